// SPDX-License-Identifier: MIT
'use strict';

// An aggregate twin query through Registry.createQuery: devices report a
// firmware version over MQTT, and a GROUP BY query counts them.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Mqtt } = require('azure-iot-device-mqtt');
const {
  uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString,
} = require('../lib/hub');

test('createQuery with COUNT() and GROUP BY properties.reported.fw returns one row per group', { timeout: 60000 }, async () => {
  const reg = registry();
  const run = uniqueId('run');
  const fleet = [['1.0', uniqueId('node-fw')], ['1.0', uniqueId('node-fw')], ['2.0', uniqueId('node-fw')]];
  try {
    for (const [fw, deviceId] of fleet) {
      const device = await createDevice(reg, deviceId);
      // Tags set by the back end keep this run's devices apart from others.
      await reg.updateTwin(deviceId, { tags: { run } }, '*');
      const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Mqtt);
      try {
        await client.open();
        const twin = await client.getTwin();
        await new Promise((resolve, reject) => {
          twin.properties.reported.update({ fw }, (err) => (err ? reject(err) : resolve()));
        });
      } finally {
        await client.close();
      }
    }

    const query = reg.createQuery(
      `SELECT properties.reported.fw AS fw, COUNT() AS n FROM devices WHERE tags.run = '${run}' GROUP BY properties.reported.fw`,
    );
    const { result } = await query.next();
    assert.equal(query.hasMoreResults, false, 'one page');
    assert.ok(Array.isArray(result), `result is an array: ${JSON.stringify(result)}`);
    const rows = [...result].sort((a, b) => String(a.fw).localeCompare(String(b.fw)));
    assert.deepEqual(rows, [{ fw: '1.0', n: 2 }, { fw: '2.0', n: 1 }]);
  } finally {
    for (const [, deviceId] of fleet) {
      await deleteQuietly(reg, deviceId);
    }
  }
});
