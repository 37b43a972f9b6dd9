// SPDX-License-Identifier: MIT
'use strict';

// File upload and registry import/export with the official SDKs, against
// the emulator with Azurite as its blob store. The device SDK uploads
// straight to Azurite with @azure/storage-blob, as it does to Azure
// Storage; the tests read and write blobs with the same package. The Go
// harness starts Azurite and sets STORAGE_CONNECTION_STRING when
// IOTHUB_E2E_AZURITE=1.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Readable } = require('node:stream');
const { BlobServiceClient, ContainerSASPermissions } = require('@azure/storage-blob');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Client: ServiceClient } = require('azure-iothub');
const {
  env, noRetry, registry, deviceClient, uniqueId, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');
const { control, eventually } = require('../lib/control');

const storage = process.env.STORAGE_CONNECTION_STRING;
const uploadContainer = process.env.FILE_UPLOAD_CONTAINER || 'fileupload';
const skip = storage ? false : 'needs Azurite: run through the Go harness with IOTHUB_E2E_AZURITE=1 (make test does)';

function blobService() {
  return BlobServiceClient.fromConnectionString(storage);
}

// receiveNotification takes the next file-upload notification the way a
// back end does, with the service SDK's file notification receiver (AMQP,
// /messages/serviceBound/filenotifications), and completes it.
async function receiveNotification() {
  const service = ServiceClient.fromConnectionString(env.serviceConnectionString);
  service.setRetryPolicy(noRetry);
  try {
    await service.open();
    const receiver = (await service.getFileNotificationReceiver()).result;
    const msg = await withTimeout(new Promise((resolve, reject) => {
      receiver.once('message', resolve);
      receiver.once('error', reject);
    }), 10000, 'a file notification');
    assert.equal(msg.contentType, 'application/vnd.microsoft.iothub.filenotification.json');
    await receiver.complete(msg);
    return JSON.parse(msg.data.toString());
  } finally {
    await service.close();
  }
}

async function waitJob(reg, jobId) {
  let job;
  await eventually(`job ${jobId} to finish`, async () => {
    job = await reg.getJob(jobId);
    return ['completed', 'failed', 'cancelled'].includes(job.status);
  }, 30000);
  return job;
}

describe('file upload', { skip }, () => {
  const reg = registry();
  let deviceId;
  let client;

  before(async () => {
    deviceId = uniqueId('upload');
    const d = await createDevice(reg, deviceId);
    client = deviceClient(deviceConnectionString(deviceId, d.authentication.symmetricKey.primaryKey), Mqtt);
    await client.open();
  });

  after(async () => {
    if (client) {
      await client.close();
    }
    await deleteQuietly(reg, deviceId);
  });

  test('uploadToBlob over MQTT writes the blob to Azurite and the hub notifies the back end', async () => {
    const data = Buffer.from(`telemetry dump ${new Date().toISOString()}\n`.repeat(1000));
    await withTimeout(client.uploadToBlob('dumps/first.log', Readable.from(data), data.length), 30000, 'uploadToBlob');

    const blob = blobService().getContainerClient(uploadContainer).getBlobClient(`${deviceId}/dumps/first.log`);
    const stored = await blob.downloadToBuffer();
    assert.ok(stored.equals(data), `the blob holds ${stored.length} bytes, want ${data.length}`);

    const n = await receiveNotification();
    assert.equal(n.deviceId, deviceId);
    assert.equal(n.blobName, `${deviceId}/dumps/first.log`);
    assert.equal(n.blobSizeInBytes, data.length);
    assert.ok(n.blobUri.endsWith(`/${uploadContainer}/${deviceId}/dumps/first.log`), n.blobUri);
    assert.ok(!Number.isNaN(Date.parse(n.lastUpdatedTime)) && !Number.isNaN(Date.parse(n.enqueuedTimeUtc)), JSON.stringify(n));
  });

  test('the SDK reports a failed upload to the hub, which sends no notification', async () => {
    // The SDK's two lower-level calls, as an application that uploads by
    // itself uses them: get the SAS, do nothing, report the failure.
    const info = await client.getBlobSharedAccessSignature('never/written.bin');
    assert.equal(info.blobName, `${deviceId}/never/written.bin`);
    assert.ok(info.sasToken.startsWith('?') && info.correlationId, JSON.stringify(info));
    await client.notifyBlobUploadStatus(info.correlationId, false, 500, 'the device gave up');
    const res = await control('GET', '/emulator/filenotifications?wait=0.5');
    assert.equal(res.status, 204, `a failed upload produced a notification: ${JSON.stringify(res.body)}`);
    // The correlation id is spent: the SDK reports the hub's 400 by its
    // status text only.
    await assert.rejects(client.notifyBlobUploadStatus(info.correlationId, true, 200, 'again'), /Bad Request/);
  });
});

describe('registry import and export jobs', { skip }, () => {
  const reg = registry();
  const container = uniqueId('jobs').toLowerCase();
  const ids = [uniqueId('exp'), uniqueId('exp')];
  let sasUrl;

  before(async () => {
    const c = blobService().getContainerClient(container);
    await c.create();
    sasUrl = await c.generateSasUrl({ permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3600 * 1000) });
    for (const id of ids) {
      await createDevice(reg, id);
    }
    await reg.updateTwin(ids[0], { tags: { line: 'export' } }, '*');
  });

  after(async () => {
    for (const id of ids) {
      await deleteQuietly(reg, id);
    }
  });

  test('exportDevicesToBlob then importDevicesFromBlob restores deleted devices with their keys and tags', async () => {
    // The job calls resolve to the job itself (callbackToPromise), listJobs
    // to {responseBody}.
    const exportJob = await reg.exportDevicesToBlob(sasUrl, false);
    assert.equal(exportJob.type, 'export');
    const exported = await waitJob(reg, exportJob.jobId);
    assert.equal(exported.status, 'completed', exported.failureReason);

    const text = (await blobService().getContainerClient(container).getBlobClient('devices.txt').downloadToBuffer()).toString();
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    const mine = lines.filter((l) => ids.includes(l.id));
    assert.equal(mine.length, 2, text);
    const first = mine.find((l) => l.id === ids[0]);
    assert.equal(first.tags.line, 'export');
    const { responseBody: before } = await reg.get(ids[1]);
    assert.equal(mine.find((l) => l.id === ids[1]).authentication.symmetricKey.primaryKey, before.authentication.symmetricKey.primaryKey);

    for (const id of ids) {
      await reg.delete(id);
    }
    const importJob = await reg.importDevicesFromBlob(sasUrl, sasUrl);
    const imported = await waitJob(reg, importJob.jobId);
    assert.equal(imported.status, 'completed', imported.failureReason);

    const { responseBody: back } = await reg.get(ids[1]);
    assert.equal(back.authentication.symmetricKey.primaryKey, before.authentication.symmetricKey.primaryKey);
    const { responseBody: twin } = await reg.getTwin(ids[0]);
    assert.equal(twin.tags.line, 'export');

    const { responseBody: jobs } = await reg.listJobs();
    assert.ok(jobs.some((j) => j.jobId === importJob.jobId), JSON.stringify(jobs));
  });
});
