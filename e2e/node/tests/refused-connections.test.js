// SPDX-License-Identifier: MIT
'use strict';

// The hub refuses CONNECT with "not authorized" (CONNACK 5) for bad keys,
// unknown and disabled devices; the SDK reports UnauthorizedError.

const crypto = require('node:crypto');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  env, transports, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString,
} = require('../lib/hub');

const reg = registry();
const disabledId = uniqueId('node-disabled');
let disabledKey;

before(async () => {
  const device = await createDevice(reg, disabledId);
  disabledKey = device.authentication.symmetricKey.primaryKey;
  const { responseBody: current } = await reg.get(disabledId);
  current.status = 'disabled';
  const { responseBody: updated } = await reg.update(current);
  assert.equal(updated.status, 'disabled', 'status after Registry.update');
});

after(async () => {
  await deleteQuietly(reg, disabledId);
});

const randomKey = () => crypto.randomBytes(32).toString('base64');

const cases = [
  { name: 'wrong key', connectionString: () => deviceConnectionString(env.deviceId, randomKey()) },
  { name: 'unknown device', connectionString: () => deviceConnectionString(uniqueId('node-nosuch'), randomKey()) },
  { name: 'disabled device', connectionString: () => deviceConnectionString(disabledId, disabledKey) },
];

for (const { name: transportName, Transport } of transports) {
  for (const c of cases) {
    test(`${c.name} is refused over ${transportName}`, { timeout: 30000 }, async () => {
      const client = deviceClient(c.connectionString(), Transport);
      try {
        await assert.rejects(client.open(), (err) => {
          assert.equal(err.name, 'UnauthorizedError', `got ${err.name}: ${err.message}`);
          // The SDK calls any failed first connection UnauthorizedError, a
          // dropped socket too; mqtt.js's text for CONNACK code 5 shows the
          // hub really answered "not authorized".
          assert.match(err.message, /Connection refused: Not authorized/);
          return true;
        });
      } finally {
        await client.close().catch(() => {});
      }
    });
  }
}
