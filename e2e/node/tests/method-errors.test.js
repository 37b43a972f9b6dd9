// SPDX-License-Identifier: MIT
'use strict';

// Direct methods to devices that cannot answer fail on the service side
// with the hub's 404 errors.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { uniqueId, registry, serviceClient, createDevice, deleteQuietly } = require('../lib/hub');

const params = { methodName: 'rebootDevice', payload: { method_number: '42' }, responseTimeoutInSeconds: 30 };

test('method to a device that never connected is 404 DeviceNotOnline', { timeout: 30000 }, async () => {
  const reg = registry();
  const deviceId = uniqueId('node-offline');
  await createDevice(reg, deviceId);
  try {
    await assert.rejects(serviceClient().invokeDeviceMethod(deviceId, params), (err) => {
      assert.equal(err.response && err.response.statusCode, 404, `got ${err.name}: ${err.message}`);
      // The body is form B: an escaped JSON object inside "Message".
      assert.match(String(err.responseBody), /404103/, 'DeviceNotOnline code in the body');
      return true;
    });
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});

test('method to an unregistered device is DeviceNotFoundError', { timeout: 30000 }, async () => {
  await assert.rejects(serviceClient().invokeDeviceMethod(uniqueId('node-nosuch'), params), (err) => {
    assert.equal(err.name, 'DeviceNotFoundError', `got ${err.name}: ${err.message}`);
    assert.equal(err.response.statusCode, 404);
    return true;
  });
});
