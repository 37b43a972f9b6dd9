// SPDX-License-Identifier: MIT
'use strict';

// A desired-property patch from the back end reaches a connected device's
// twin.on('properties.desired') listener.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  transports, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');

for (const { name, Transport } of transports) {
  test(`desired property patch reaches the device over ${name}`, { timeout: 60000 }, async () => {
    const reg = registry();
    // A fresh device per transport: x must not be set before the patch.
    const deviceId = uniqueId('node-desired');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Transport);
    try {
      await client.open();
      const twin = await client.getTwin();
      assert.equal(twin.properties.desired.x, undefined, 'x before the patch');

      const received = new Promise((resolve) => {
        twin.on('properties.desired', (delta) => {
          if (delta.x !== undefined) {
            resolve(delta);
          }
        });
      });
      // Adding the listener subscribes to desired updates, with no
      // completion callback. A twin GET on the same connection is answered
      // only after the hub has processed the earlier SUBSCRIBE, so after it
      // the patch cannot overtake the subscription.
      await twin.get();

      await reg.updateTwin(deviceId, { properties: { desired: { x: 1 } } }, '*');
      const delta = await withTimeout(received, 15000, 'the desired-property notification');
      assert.equal(delta.x, 1, 'x in the notification');
      assert.equal(typeof delta.$version, 'number', '$version in the notification');
      assert.equal(twin.properties.desired.x, 1, 'x merged into the device twin');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}
