// SPDX-License-Identifier: MIT
'use strict';

// Jobs v2 through the official JobClient (azure-iothub): scheduled twin
// updates and direct methods reach devices connected with the official
// device SDK over MQTT, jobs are read back with getJob, createQuery and a
// devices.jobs query, and cancelled. The emulator runs with the S1 limit
// of one active job, so each test leaves none behind.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { JobClient } = require('azure-iothub');
const { Mqtt } = require('azure-iot-device-mqtt');
const {
  env, uniqueId, registry, serviceClient, deviceClient, createDevice, deleteQuietly, deviceConnectionString,
  withTimeout, invokeWhenListening,
} = require('../lib/hub');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function jobClient() {
  return JobClient.fromConnectionString(env.serviceConnectionString);
}

// waitForJobStatus polls getJob until the job has the status, as the SDK's
// own e2e suite does; another final status fails at once.
async function waitForJobStatus(jc, jobId, status, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const { jobStatus: job } = await jc.getJob(jobId);
    if (job.status === status) {
      return job;
    }
    if (['completed', 'failed', 'cancelled'].includes(job.status)) {
      throw new Error(`job ${jobId} is ${job.status}, not ${status}: ${JSON.stringify(job)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`job ${jobId} is still ${job.status} after ${ms} ms, not ${status}`);
    }
    await sleep(50);
  }
}

async function connect(deviceId, device) {
  const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Mqtt);
  await client.open();
  return client;
}

function rejectsWith(status, code) {
  return (err) => {
    assert.equal(err.response && err.response.statusCode, status, `got ${err.name}: ${err.message}`);
    assert.match(String(err.responseBody), new RegExp(`ErrorCode:${code};`), `${code} in ${err.responseBody}`);
    return true;
  };
}

test('scheduleTwinUpdate with a query condition updates the twin and reaches the connected device', { timeout: 60000 }, async () => {
  const reg = registry();
  const jc = jobClient();
  const deviceId = uniqueId('node-job-twin');
  const device = await createDevice(reg, deviceId);
  const client = await connect(deviceId, device);
  try {
    const twin = await client.getTwin();
    const received = new Promise((resolve) => {
      twin.on('properties.desired', (delta) => {
        if (delta.fw !== undefined) {
          resolve(delta);
        }
      });
    });
    // As in desired-properties.test.js: a GET after adding the listener
    // is answered after the subscription is in place.
    await twin.get();

    const jobId = uniqueId('twin');
    const patch = { etag: '*', tags: { key: 'value2' }, properties: { desired: { fw: '2.0' }, reported: {} } };
    const { jobStatus: created } = await jc.scheduleTwinUpdate(jobId, `deviceId = '${deviceId}'`, patch, new Date(Date.now()), 120);
    assert.deepEqual(created, { jobId, type: 'scheduleUpdateTwin', status: 'queued' }, 'the answer to the PUT');

    const job = await waitForJobStatus(jc, jobId, 'completed');
    assert.equal(job.type, 'scheduleUpdateTwin');
    assert.equal(job.queryCondition, `deviceId = '${deviceId}'`);
    assert.equal(job.maxExecutionTimeInSeconds, 120);
    assert.deepEqual(job.deviceJobStatistics, { deviceCount: 1, failedCount: 0, succeededCount: 1, runningCount: 0, pendingCount: 0 });
    assert.ok(job.endTime, 'a completed job has an endTime');

    const delta = await withTimeout(received, 15000, 'the job\'s desired-property notification');
    assert.equal(delta.fw, '2.0');
    const { responseBody: serviceTwin } = await reg.getTwin(deviceId);
    assert.equal(serviceTwin.tags.key, 'value2');
    assert.equal(serviceTwin.properties.desired.fw, '2.0');
    assert.deepEqual(client.errors, []);
  } finally {
    await client.close();
    await deleteQuietly(reg, deviceId);
  }
});

test('scheduleDeviceMethod calls the method on a connected device and fails an offline one', { timeout: 60000 }, async () => {
  const reg = registry();
  const jc = jobClient();
  const run = uniqueId('run');
  const onId = uniqueId('node-job-on');
  const offId = uniqueId('node-job-off');
  const on = await createDevice(reg, onId);
  await createDevice(reg, offId);
  const client = await connect(onId, on);
  try {
    for (const id of [onId, offId]) {
      await reg.updateTwin(id, { tags: { run } }, '*');
    }
    const calls = [];
    client.onDeviceMethod('reboot', (request, response) => {
      calls.push(request.payload);
      response.send(200, { rebooted: true, payload: request.payload }, () => {});
    });
    await invokeWhenListening(serviceClient(), onId, { methodName: 'reboot', payload: 'probe', responseTimeoutInSeconds: 10 });

    const jobId = uniqueId('method');
    const { jobStatus: created } = await jc.scheduleDeviceMethod(jobId, `tags.run = '${run}'`,
      { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 10 }, new Date(), 120);
    assert.equal(created.status, 'queued');

    const job = await waitForJobStatus(jc, jobId, 'completed');
    assert.deepEqual(job.cloudToDeviceMethod, { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 0 });
    assert.deepEqual(job.deviceJobStatistics, { deviceCount: 2, failedCount: 1, succeededCount: 1, runningCount: 0, pendingCount: 0 });
    assert.deepEqual(calls, ['probe', { delay: 1 }], 'what the device received');

    const query = reg.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jobId}'`);
    const { result, message } = await query.next();
    assert.equal(message.headers['x-ms-item-type'], 'DeviceJob');
    const rows = Object.fromEntries(result.map((r) => [r.deviceId, r]));
    assert.equal(rows[onId].status, 'completed');
    assert.equal(rows[onId].jobType, 'scheduleDeviceMethod');
    assert.deepEqual(rows[onId].outcome, { deviceMethodResponse: { status: 200, payload: { rebooted: true, payload: { delay: 1 } } } });
    assert.equal(rows[offId].status, 'failed');
    assert.equal(rows[offId].error.code, 'DeviceNotOnline');
    for (const r of result) {
      for (const k of ['startTimeUtc', 'endTimeUtc', 'createdDateTimeUtc', 'lastUpdatedDateTimeUtc']) {
        assert.ok(!Number.isNaN(Date.parse(r[k])), `${k} of ${r.deviceId} is a time: ${r[k]}`);
      }
    }
    assert.deepEqual(client.errors, []);
  } finally {
    await client.close();
    await deleteQuietly(reg, onId);
    await deleteQuietly(reg, offId);
  }
});

test('a job an hour ahead answers queued, waits as scheduled, takes the one active slot and cancels', { timeout: 60000 }, async () => {
  const reg = registry();
  const jc = jobClient();
  const deviceId = uniqueId('node-job-later');
  await createDevice(reg, deviceId);
  try {
    const jobId = uniqueId('later');
    const patch = { etag: '*', tags: {}, properties: { desired: { never: true }, reported: {} } };
    const { jobStatus: created } = await jc.scheduleTwinUpdate(jobId, `deviceId = '${deviceId}'`, patch, new Date(Date.now() + 3600000), 120);
    assert.equal(created.jobId, jobId);
    assert.equal(created.status, 'queued');
    await waitForJobStatus(jc, jobId, 'scheduled');

    // S1 allows one active job: another is refused until this one ends.
    await assert.rejects(jc.scheduleDeviceMethod(uniqueId('second'), '*', { methodName: 'm' }), (err) => {
      assert.equal(err.name, 'ThrottlingError', `got ${err.name}: ${err.message}`);
      return rejectsWith(429, 'ThrottlingMaxActiveJobCountExceeded')(err);
    });
    // A job id is taken for good.
    await assert.rejects(jc.scheduleTwinUpdate(jobId, '*', patch), rejectsWith(409, 'JobAlreadyExists'));

    const { jobStatus: cancelled } = await jc.cancelJob(jobId);
    assert.equal(cancelled.status, 'cancelled');
    const { jobStatus: job } = await jc.getJob(jobId);
    assert.equal(job.status, 'cancelled');
    const { responseBody: twin } = await reg.getTwin(deviceId);
    assert.equal(twin.properties.desired.never, undefined, 'a cancelled job changed the twin');
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});

test('createQuery pages through the hub\'s jobs by type and status', { timeout: 60000 }, async () => {
  const jc = jobClient();
  const jobs = [];
  for (let i = 0; i < 3; i++) {
    const jobId = uniqueId('listed');
    await jc.scheduleTwinUpdate(jobId, "deviceId = 'nobody'", { etag: '*', tags: { i } }, new Date(), 60);
    await waitForJobStatus(jc, jobId, 'completed');
    jobs.push(jobId);
  }
  const seen = [];
  const query = jc.createQuery('scheduleUpdateTwin', 'completed', 1);
  let pages = 0;
  while (query.hasMoreResults) {
    // The promise form of next() needs the token passed in.
    const { result, message } = await query.next(query.continuationToken);
    assert.equal(message.headers['x-ms-item-type'], 'JobResponse');
    assert.ok(result.length <= 1, `page of ${result.length}`);
    for (const j of result) {
      assert.equal(j.type, 'scheduleUpdateTwin');
      assert.equal(j.status, 'completed');
      seen.push(j.jobId);
    }
    pages++;
    assert.ok(pages < 100, 'paging ends');
  }
  for (const id of jobs) {
    assert.ok(seen.includes(id), `${id} listed in ${seen}`);
  }
  assert.deepEqual(seen.filter((id) => jobs.includes(id)), jobs, 'oldest first');

  const { result: methods } = await jc.createQuery('scheduleDeviceMethod', 'completed').next();
  assert.ok(methods.every((j) => j.type === 'scheduleDeviceMethod'), JSON.stringify(methods));
  assert.ok(!methods.some((j) => jobs.includes(j.jobId)));
});

test('getJob and cancelJob of an unknown id are 404 JobNotFound', { timeout: 30000 }, async () => {
  const jc = jobClient();
  await assert.rejects(jc.getJob(uniqueId('nosuch')), rejectsWith(404, 'JobNotFound'));
  await assert.rejects(jc.cancelJob(uniqueId('nosuch')), rejectsWith(404, 'JobNotFound'));
});
