// SPDX-License-Identifier: MIT
'use strict';

// Wire fidelity fixes (issue 13), each through the official Node SDKs: a
// null desired section, method payloads, edge scopes, one twin rendering for
// GET and query, query paging, a twin update without its properties wrapper,
// and the back end's cloud-to-device routes (feedback queue and purge) that
// the service SDK's generated protocol layer calls.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { IoTHubTokenCredentials } = require('azure-iothub');
const { IotHubGatewayServiceAPIs } = require('azure-iothub/dist/pl/iotHubGatewayServiceAPIs');
const {
  env, transports, uniqueId, registry, serviceClient, deviceClient, createDevice, deleteQuietly,
  deviceConnectionString, withTimeout, invokeWhenListening,
} = require('../lib/hub');
const { sendC2D, pendingC2D, eventually } = require('../lib/control');

// protocolLayer is the SDK's generated REST client, as its DigitalTwinClient
// builds it; it is the Node SDK's only way to the feedback and purge routes.
function protocolLayer() {
  const creds = new IoTHubTokenCredentials(env.serviceConnectionString);
  return new IotHubGatewayServiceAPIs(creds, { baseUri: 'https://' + creds.getHubName(), apiVersion: '2021-04-12' });
}

// deviceDesired returns the device twin's desired properties without $version.
function deviceDesired(twin) {
  const { $version, ...rest } = twin.properties.desired;
  return rest;
}

for (const etag of [undefined, '*']) {
  test(`a null desired section clears every desired property (etag ${etag})`, { timeout: 60000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-nulldesired');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), transports[0].Transport);
    try {
      await client.open();
      const twin = await client.getTwin();
      const versions = [];
      twin.on('properties.desired', (delta) => versions.push(delta.$version));
      await twin.get(); // the desired subscription is in place after this answer

      const { responseBody: serviceTwin } = await reg.getTwin(deviceId);
      await serviceTwin.update({ properties: { desired: { a: 1, b: { c: 2 } } } });
      if (etag) {
        serviceTwin.etag = etag;
      }
      await serviceTwin.update({ properties: { desired: null } });
      const { responseBody: after } = await reg.getTwin(deviceId);
      const { $version, $metadata, ...desired } = after.properties.desired;
      assert.deepEqual(desired, {}, 'desired after the null patch');
      assert.equal($version, 3, 'desired $version');

      await withTimeout((async () => {
        while (!versions.includes(3)) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(), 15000, 'the device to get desired $version 3');
      assert.deepEqual(deviceDesired(twin), {}, 'the device twin after the null patch');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}

test('a twin update without the properties wrapper is refused', async () => {
  const reg = registry();
  const deviceId = uniqueId('node-nowrapper');
  await createDevice(reg, deviceId);
  try {
    await assert.rejects(reg.updateTwin(deviceId, { desired: { x: 1 } }, '*'), (err) => err.name === 'ArgumentError');
    const { responseBody: tw } = await reg.getTwin(deviceId);
    assert.equal(tw.properties.desired.x, undefined, 'nothing was written');
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});

for (const payload of [null, '', 'foo', { k1: 'v1' }, {}]) {
  test(`a method payload of ${JSON.stringify(payload)} reaches the device and comes back`, { timeout: 60000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-payload');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), transports[0].Transport);
    try {
      await client.open();
      let received;
      client.onDeviceMethod('echo', (request, response) => {
        received = request.payload;
        response.send(200, request.payload, () => {});
      });
      const result = await invokeWhenListening(serviceClient(), deviceId, { methodName: 'echo', payload, responseTimeoutInSeconds: 10 });
      assert.equal(result.status, 200);
      assert.deepEqual(received, payload, 'payload on the device');
      assert.deepEqual(result.payload, payload, 'payload back at the service');
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}

test('leaf and edge scopes must name edge devices of the hub', async () => {
  const reg = registry();
  const edgeId = uniqueId('node-edge');
  const leafId = uniqueId('node-leaf');
  try {
    const { responseBody: edge } = await reg.create({ deviceId: edgeId, capabilities: { iotEdge: true } });
    assert.match(edge.deviceScope, /^ms-azure-iot-edge:\/\//);
    const { responseBody: leaf } = await reg.create({ deviceId: leafId, deviceScope: edge.deviceScope });
    assert.equal(leaf.deviceScope, edge.deviceScope);
    assert.deepEqual(leaf.parentScopes, [edge.deviceScope]);

    // As in the SDK's own e2e suite: moving the leaf to an arbitrary scope fails.
    await assert.rejects(reg.update({ ...leaf, deviceScope: crypto.randomUUID(), parentScopes: undefined }), (err) => err.name === 'ArgumentError');
    const { responseBody: still } = await reg.get(leafId);
    assert.equal(still.deviceScope, edge.deviceScope, 'the refused update changed nothing');
    await assert.rejects(reg.create({ deviceId: uniqueId('node-orphan'), deviceScope: 'someScope' }), (err) => err.name === 'ArgumentError');
  } finally {
    await deleteQuietly(reg, leafId);
    await deleteQuietly(reg, edgeId);
  }
});

test('GET twin and a query row show the same twin', async () => {
  const reg = registry();
  const deviceId = uniqueId('node-onerender');
  await createDevice(reg, deviceId);
  try {
    await reg.updateTwin(deviceId, { tags: { site: 'B7' }, properties: { desired: { fan: 1 } } }, '*');
    await sendC2D(deviceId, 'queued', { 'iothub-messageid': 'q1' });
    const { responseBody: got } = await reg.getTwin(deviceId);
    const { result } = await reg.createQuery(`SELECT * FROM devices WHERE deviceId = '${deviceId}'`).next();
    assert.equal(result.length, 1);
    const row = result[0];
    // The Node Twin object carries the REST fields plus its own members.
    for (const k of Object.keys(row)) {
      assert.deepEqual(JSON.parse(JSON.stringify(got[k])), row[k], `field ${k}`);
    }
    for (const k of ['statusUpdateTime', 'cloudToDeviceMessageCount', 'modelId', 'connectionState', 'lastActivityTime']) {
      assert.ok(k in row, `query row has ${k}`);
    }
    assert.equal(row.cloudToDeviceMessageCount, 1);
  } finally {
    await deleteQuietly(reg, deviceId);
  }
});

test('interleaved paged queries each page through their own rows', async () => {
  const reg = registry();
  const prefix = uniqueId('node-pages');
  const ids = [];
  try {
    for (let i = 0; i < 4; i++) {
      const id = `${prefix}-${i}`;
      ids.push(id);
      await createDevice(reg, id);
      await reg.updateTwin(id, { tags: { parity: i % 2 ? 'odd' : 'even', prefix } }, '*');
    }
    const evens = reg.createQuery(`SELECT * FROM devices WHERE tags.prefix = '${prefix}' AND tags.parity = 'even'`, 1);
    const odds = reg.createQuery(`SELECT * FROM devices WHERE tags.prefix = '${prefix}' AND tags.parity = 'odd'`, 1);
    const seen = { even: [], odd: [] };
    for (let pages = 0; evens.hasMoreResults || odds.hasMoreResults; pages++) {
      assert.ok(pages < 10, `paging does not end: ${JSON.stringify(seen)}`);
      // Called without arguments, the promise form of next() forgets the
      // stored token (an SDK quirk): pass it explicitly.
      if (evens.hasMoreResults) {
        seen.even.push(...(await evens.next(evens.continuationToken)).result.map((t) => t.deviceId));
      }
      if (odds.hasMoreResults) {
        seen.odd.push(...(await odds.next(odds.continuationToken)).result.map((t) => t.deviceId));
      }
    }
    assert.deepEqual(seen.even, [ids[0], ids[2]]);
    assert.deepEqual(seen.odd, [ids[1], ids[3]]);
  } finally {
    for (const id of ids) {
      await deleteQuietly(reg, id);
    }
  }
});

test('purge empties a device queue and feedback is received, abandoned and completed', { timeout: 60000 }, async () => {
  const reg = registry();
  const pl = protocolLayer();
  const deviceId = uniqueId('node-purge');
  const device = await createDevice(reg, deviceId);
  const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), transports[0].Transport);
  try {
    // Drain what other tests left in the hub-wide feedback queue.
    for (;;) {
      const res = await pl.cloudToDeviceMessages.receiveFeedbackNotification();
      if (res._response.status === 204) {
        break;
      }
      await pl.cloudToDeviceMessages.completeFeedbackNotification(JSON.parse(res._response.headers.get('etag')));
    }

    await sendC2D(deviceId, 'a', { 'iothub-messageid': 'purge-1' });
    await sendC2D(deviceId, 'b', { 'iothub-messageid': 'purge-2', 'iothub-ack': 'full' });
    const purged = await pl.cloudToDeviceMessages.purgeCloudToDeviceMessageQueue(deviceId);
    assert.equal(purged.totalMessagesPurged, 2);
    assert.equal(purged.deviceId, deviceId);
    const { responseBody: dev } = await reg.get(deviceId);
    assert.equal(dev.cloudToDeviceMessageCount, 0);

    // A message the device completes over MQTT produces Success feedback.
    await client.open();
    const got = new Promise((resolve) => client.on('message', (msg) => client.complete(msg, () => resolve(msg))));
    await sendC2D(deviceId, 'c', { 'iothub-messageid': 'fb-1', 'iothub-ack': 'positive' });
    await withTimeout(got, 15000, 'the C2D message');
    // Over MQTT, complete() is a no-op and the PUBACK that settles the message
    // leaves after the 'message' handler returns. A receive before the hub
    // has it would lock the Purged record alone and the Success record would
    // start a new message: wait for the empty queue, which the hub commits
    // together with the feedback record.
    await eventually('an empty C2D queue', async () => (await pendingC2D(deviceId)).length === 0);

    let res;
    await withTimeout((async () => {
      for (;;) {
        res = await pl.cloudToDeviceMessages.receiveFeedbackNotification();
        if (res._response.status === 200) {
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })(), 15000, 'feedback');
    let records = JSON.parse(res._response.bodyAsText);
    assert.deepEqual(records.map((r) => [r.originalMessageId, r.statusCode]), [['purge-2', 'Purged'], ['fb-1', 'Success']]);
    const lock = JSON.parse(res._response.headers.get('etag'));
    await pl.cloudToDeviceMessages.abandonFeedbackNotification(lock);
    res = await pl.cloudToDeviceMessages.receiveFeedbackNotification();
    assert.equal(res._response.status, 200);
    assert.equal(res._response.headers.get('iothub-deliverycount'), '2');
    records = JSON.parse(res._response.bodyAsText);
    assert.equal(records.length, 2);
    await pl.cloudToDeviceMessages.completeFeedbackNotification(JSON.parse(res._response.headers.get('etag')));
    res = await pl.cloudToDeviceMessages.receiveFeedbackNotification();
    assert.equal(res._response.status, 204);
    assert.deepEqual(client.errors, []);
  } finally {
    await client.close();
    await deleteQuietly(reg, deviceId);
  }
});
