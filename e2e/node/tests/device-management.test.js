// SPDX-License-Identifier: MIT
'use strict';

// The device-management tutorial (dmpatterns): the back end calls the
// rebootDevice direct method, the device answers and then reports
// iothubDM.reboot.lastReboot in its twin, which the back end reads.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { env, transports, registry, serviceClient, deviceClient, withTimeout, invokeWhenListening } = require('../lib/hub');

for (const { name, Transport } of transports) {
  test(`rebootDevice method and reported lastReboot over ${name}`, { timeout: 60000 }, async () => {
    const reg = registry();
    const service = serviceClient();
    const client = deviceClient(env.deviceConnectionString, Transport);
    try {
      await client.open();

      // The handler answers first, as the tutorial's device does, then
      // records the reboot in its reported properties.
      const rebooted = new Promise((resolve, reject) => {
        client.onDeviceMethod('rebootDevice', (request, response) => {
          (async () => {
            await response.send(200, { rebooting: true, methodNumber: request.payload.method_number });
            const twin = await client.getTwin();
            const lastReboot = new Date().toISOString();
            await new Promise((ok, fail) => {
              twin.properties.reported.update({ iothubDM: { reboot: { lastReboot } } }, (err) => (err ? fail(err) : ok()));
            });
            return { methodName: request.methodName, payload: request.payload, lastReboot };
          })().then(resolve, reject);
        });
      });

      const result = await invokeWhenListening(service, env.deviceId, {
        methodName: 'rebootDevice',
        payload: { method_number: '42' },
        responseTimeoutInSeconds: 30,
      });
      assert.equal(result.status, 200, 'method status');
      assert.deepEqual(result.payload, { rebooting: true, methodNumber: '42' }, 'method payload seen by the service');

      const device = await withTimeout(rebooted, 30000, 'the device to report lastReboot');
      assert.equal(device.methodName, 'rebootDevice');
      assert.deepEqual(device.payload, { method_number: '42' }, 'method payload seen by the device');

      const { responseBody: twin } = await reg.getTwin(env.deviceId);
      assert.equal(twin.properties.reported.iothubDM.reboot.lastReboot, device.lastReboot);
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
}
