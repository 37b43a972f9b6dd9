// SPDX-License-Identifier: MIT
'use strict';

// IoT Plug and Play digital twins through the official Node service SDK's
// DigitalTwinClient (getDigitalTwin, updateDigitalTwin, invokeCommand,
// invokeComponentCommand), with a device that announces its model id and
// follows the PnP conventions through the Node device SDK.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { DigitalTwinClient, IoTHubTokenCredentials } = require('azure-iothub');
const {
  env, transports, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');

const modelId = 'dtmi:com:example:TemperatureController;2';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check, what, ms = 15000) {
  return withTimeout((async () => {
    for (;;) {
      const v = await check();
      if (v) {
        return v;
      }
      await sleep(50);
    }
  })(), ms, what);
}

function reportedUpdate(twin, patch) {
  return new Promise((ok, fail) => twin.properties.reported.update(patch, (err) => (err ? fail(err) : ok())));
}

// invokeWhenListening retries while the hub says the device has not
// subscribed to methods yet (the SDK subscribes lazily, with no callback).
async function invokeWhenListening(call, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (err.statusCode !== 404 || Date.now() > deadline) {
        throw err;
      }
      await sleep(200);
    }
  }
}

for (const { name, Transport } of transports) {
  test(`digital twin: get, update and commands with a Plug and Play device over ${name}`, { timeout: 90000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-pnp');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Transport);
    const dt = new DigitalTwinClient(new IoTHubTokenCredentials(env.serviceConnectionString));
    try {
      await client.setOptions({ modelId });
      await client.open();
      const twin = await client.getTwin();
      const deltas = [];
      twin.on('properties.desired', (delta) => deltas.push(delta));
      await twin.get();

      const first = await dt.getDigitalTwin(deviceId);
      assert.equal(first.$dtId, deviceId);
      assert.deepEqual(first.$metadata, { $model: modelId });
      const etag = first._response.headers.get('etag');
      assert.equal(etag, '"AAAAAAAAAAE="');

      // A component and a root property, written as the docs show.
      await dt.updateDigitalTwin(deviceId, [
        { op: 'add', path: '/thermostat1', value: { targetTemperature: 21.5, $metadata: {} } },
        { op: 'add', path: '/targetTemperature', value: 20 },
      ], etag);
      const delta = await waitFor(() => deltas.find((d) => d.thermostat1), 'the update to reach the device');
      assert.deepEqual(delta.thermostat1, { __t: 'c', targetTemperature: 21.5 });
      assert.equal(delta.targetTemperature, 20);

      // The device acknowledges per the PnP conventions.
      await reportedUpdate(twin, {
        serialNumber: 'sn-42',
        targetTemperature: { value: 20, ac: 200, av: delta.$version, ad: 'done' },
        thermostat1: { __t: 'c', maxTempSinceLastReboot: 25.3, targetTemperature: { value: 21.5, ac: 200, av: delta.$version, ad: 'ok' } },
      });
      const second = await dt.getDigitalTwin(deviceId);
      assert.equal(second.serialNumber, 'sn-42');
      assert.equal(second.targetTemperature, 20);
      assert.equal(second.thermostat1.targetTemperature, 21.5);
      assert.equal(second.thermostat1.maxTempSinceLastReboot, 25.3);
      const meta = second.thermostat1.$metadata.targetTemperature;
      assert.equal(meta.desiredValue, 21.5);
      assert.equal(meta.desiredVersion, delta.$version);
      assert.equal(meta.ackCode, 200);
      assert.equal(meta.ackVersion, delta.$version);
      assert.equal(meta.ackDescription, 'ok');
      assert.ok(!Number.isNaN(Date.parse(meta.lastUpdateTime)));
      assert.equal(second.$metadata.$model, modelId);
      assert.equal(second.$metadata.targetTemperature.ackDescription, 'done');

      // A stale etag and an operation the hub does not take change nothing.
      await assert.rejects(dt.updateDigitalTwin(deviceId, [{ op: 'add', path: '/targetTemperature', value: 1 }], etag),
        (err) => err.statusCode === 412);
      await assert.rejects(dt.updateDigitalTwin(deviceId, [{ op: 'move', from: '/targetTemperature', path: '/x' }]),
        (err) => err.statusCode === 400);
      const third = await dt.getDigitalTwin(deviceId);
      assert.equal(third.$metadata.targetTemperature.desiredValue, 20);
      assert.equal(third._response.headers.get('etag'), second._response.headers.get('etag'));

      // Commands are direct methods: {component}*{command} for a component.
      client.onDeviceMethod('thermostat1*getMaxMinReport', (request, response) => {
        response.send(200, { maxTemp: 25.3, since: request.payload }, () => {});
      });
      client.onDeviceMethod('reboot', (request, response) => {
        response.send(202, { delay: request.payload }, () => {});
      });
      const since = '2024-05-02T00:00:00.000Z';
      const report = await invokeWhenListening(() => dt.invokeComponentCommand(deviceId, 'thermostat1', 'getMaxMinReport', since,
        { connectTimeoutInSeconds: 5, responseTimeoutInSeconds: 10 }));
      assert.deepEqual(report.body, { maxTemp: 25.3, since });
      assert.equal(report.xMsCommandStatuscode, 200);
      assert.ok(report.xMsRequestId, 'x-ms-request-id');
      const reboot = await invokeWhenListening(() => dt.invokeCommand(deviceId, 'reboot', 5));
      assert.deepEqual(reboot.body, { delay: 5 });
      assert.equal(reboot.xMsCommandStatuscode, 202);
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}

test('digital twin commands to a device that is not connected fail with 404', { timeout: 30000 }, async () => {
  const reg = registry();
  const deviceId = uniqueId('node-pnp-offline');
  await createDevice(reg, deviceId);
  const dt = new DigitalTwinClient(new IoTHubTokenCredentials(env.serviceConnectionString));
  try {
    await assert.rejects(dt.invokeCommand(deviceId, 'reboot', 1), (err) => err.statusCode === 404);
    await assert.rejects(dt.getDigitalTwin(uniqueId('node-pnp-ghost')), (err) => err.statusCode === 404);
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});
