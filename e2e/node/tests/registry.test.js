// SPDX-License-Identifier: MIT
'use strict';

// The registry through azure-iothub: device CRUD and query paging.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { uniqueId, registry, createDevice, deleteQuietly } = require('../lib/hub');

test('Registry create, get, update and delete a device', { timeout: 30000 }, async () => {
  const reg = registry();
  const deviceId = uniqueId('node-crud');
  try {
    const created = await createDevice(reg, deviceId);
    assert.equal(created.deviceId, deviceId);
    assert.equal(created.status, 'enabled');
    assert.ok(created.authentication.symmetricKey.primaryKey, 'generated primary key');
    assert.ok(created.authentication.symmetricKey.secondaryKey, 'generated secondary key');
    assert.ok(created.etag, 'etag');

    await assert.rejects(reg.create({ deviceId }), { name: 'DeviceAlreadyExistsError' });

    const { responseBody: got } = await reg.get(deviceId);
    assert.equal(got.deviceId, deviceId);
    assert.equal(got.etag, created.etag);
    assert.deepEqual(got.authentication.symmetricKey, created.authentication.symmetricKey);

    got.status = 'disabled';
    got.statusReason = 'e2e';
    const { responseBody: updated } = await reg.update(got);
    assert.equal(updated.status, 'disabled');
    assert.notEqual(updated.etag, created.etag, 'etag changes on update');
    assert.deepEqual(updated.authentication.symmetricKey, created.authentication.symmetricKey, 'keys kept by update');

    const { responseBody: again } = await reg.get(deviceId);
    assert.equal(again.status, 'disabled');
    assert.equal(again.statusReason, 'e2e');

    await reg.delete(deviceId);
    await assert.rejects(reg.get(deviceId), { name: 'DeviceNotFoundError' });
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});

test('createQuery SELECT * FROM devices pages through every device once', { timeout: 60000 }, async () => {
  const reg = registry();
  const prefix = uniqueId('node-query');
  const ids = Array.from({ length: 7 }, (_, i) => `${prefix}-${i}`);
  try {
    for (const id of ids) {
      await createDevice(reg, id);
    }
    const query = reg.createQuery('SELECT * FROM devices', 2);
    const pages = [];
    while (query.hasMoreResults) {
      assert.ok(pages.length < 1000, 'query does not end');
      const { result } = await query.nextAsTwin();
      pages.push(result.map((t) => t.deviceId));
    }
    assert.ok(pages.length >= 3, `got ${pages.length} pages, want at least 3`);
    for (const page of pages) {
      assert.ok(page.length <= 2, `page of ${page.length} twins with page size 2`);
    }
    const seen = pages.flat();
    assert.equal(new Set(seen).size, seen.length, `a device appears twice: ${seen.join(', ')}`);
    for (const id of ids) {
      assert.ok(seen.includes(id), `${id} missing from the query results`);
    }
  } finally {
    for (const id of ids) {
      await deleteQuietly(reg, id);
    }
  }
});

test('Registry.list returns the registered devices', { timeout: 30000 }, async () => {
  const reg = registry();
  const ids = [uniqueId('node-list'), uniqueId('node-list')];
  try {
    for (const id of ids) {
      await createDevice(reg, id);
    }
    // Node sends GET /devices/ (trailing slash) with no top.
    const { responseBody: listed } = await reg.list();
    const listedIds = listed.map((d) => d.deviceId);
    for (const id of ids) {
      assert.ok(listedIds.includes(id), `${id} missing from Registry.list: ${listedIds.join(', ')}`);
    }
  } finally {
    for (const id of ids) {
      await deleteQuietly(reg, id);
    }
  }
});
