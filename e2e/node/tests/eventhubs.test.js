// SPDX-License-Identifier: MIT
'use strict';

// Reading telemetry the way backends do: @azure/event-hubs'
// EventHubConsumerClient on the hub's Event Hub-compatible endpoint, with
// the connection strings the emulator prints (AMQP over TLS on 5671, and
// UseDevelopmentEmulator=true over plain AMQP on 5672), reading what a
// device sent over MQTT. And the IoT Hub connection string's way there:
// the amqp:link:redirect a receiver on /messages/events gets.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const rhea = require('rhea');
const { EventHubConsumerClient, earliestEventPosition, latestEventPosition } = require('@azure/event-hubs');
const { Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { ConnectionString, SharedAccessSignature } = require('azure-iothub');
const {
  env, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');
const { control } = require('../lib/control');
const { collect, bodyOf } = require('../lib/eventhubs');

// The Go harness (TestNodeSDK) always sets both, from the emulator's
// banner; against an external hub (TestExternalHub) they come from
// IOTHUB_E2E_EVENTHUB_CONNECTION_STRING and ..._DEV_... when given.
const endpoints = [
  { name: 'TLS', variable: 'EVENTHUB_CONNECTION_STRING' },
  { name: 'UseDevelopmentEmulator', variable: 'EVENTHUB_DEV_CONNECTION_STRING' },
].map((e) => ({ ...e, connectionString: process.env[e.variable] }));

// entityPath is the event hub a connection string names.
function entityPath(cs) {
  return /(?:^|;)EntityPath=([^;]+)/.exec(cs)[1];
}

const hubName = ConnectionString.parse(env.serviceConnectionString).HostName.split('.')[0].split(':')[0];

// recorded returns what the emulator recorded for a device, oldest first.
async function recorded(deviceId, count) {
  const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.length, count, JSON.stringify(res.body));
  return res.body;
}

// sendTelemetry sends messages over MQTT as a fresh device and returns the
// device id and what the hub recorded.
async function sendTelemetry(reg, bodies, gapMs = 0) {
  const deviceId = uniqueId('node-eh');
  const device = await createDevice(reg, deviceId);
  const dev = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Mqtt);
  await dev.open();
  try {
    for (const [i, b] of bodies.entries()) {
      const m = new Message(JSON.stringify(b));
      m.messageId = `${deviceId}-${i}`;
      m.contentType = 'application/json';
      m.contentEncoding = 'utf-8';
      m.properties.add('seq', String(i));
      await dev.sendEvent(m);
      if (gapMs) {
        await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
    }
  } finally {
    await dev.close();
  }
  return { deviceId, device, records: await recorded(deviceId, bodies.length) };
}

for (const { name, variable, connectionString } of endpoints) {
  const skip = connectionString ? false : `${variable} is not set: no Event Hub-compatible endpoint to read (${name})`;
  test(`EventHubConsumerClient (${name}): properties, partition ids, reading from earliest`, { timeout: 90000, skip }, async () => {
    const reg = registry();
    const { deviceId, device, records } = await sendTelemetry(reg, [{ t: 1 }, { t: 2 }]);
    const client = new EventHubConsumerClient('$Default', connectionString);
    try {
      const props = await client.getEventHubProperties();
      assert.equal(props.name, entityPath(connectionString));
      assert.deepEqual(props.partitionIds, ['0', '1', '2', '3']); // the default --partitions
      assert.deepEqual(await client.getPartitionIds(), props.partitionIds);
      const partitionId = String(records[0].partition);
      const pp = await client.getPartitionProperties(partitionId);
      assert.equal(pp.partitionId, partitionId);
      assert.equal(pp.isEmpty, false);
      assert.ok(pp.lastEnqueuedSequenceNumber >= records[1].partitionSequenceNumber, JSON.stringify(pp));

      const c = collect(client, partitionId, deviceId, earliestEventPosition, (evs) => evs.length >= 2);
      const evs = await withTimeout(c.done, 30000, 'two events');
      await c.close();
      assert.equal(evs.length, 2);
      for (const [i, e] of evs.entries()) {
        assert.deepEqual(bodyOf(e), { t: i + 1 });
        assert.equal(e.messageId, `${deviceId}-${i}`);
        assert.equal(e.contentType, 'application/json');
        assert.deepEqual(e.properties, { seq: String(i) });
        assert.equal(e.sequenceNumber, records[i].partitionSequenceNumber);
        assert.equal(String(e.offset), String(records[i].sequenceNumber));
        assert.equal(e.enqueuedTimeUtc.getTime(), new Date(records[i].enqueuedTime).getTime());
        assert.equal(e.systemProperties['iothub-connection-auth-generation-id'], device.generationId);
        assert.equal(JSON.parse(e.systemProperties['iothub-connection-auth-method']).type, 'sas');
        assert.ok(e.systemProperties['iothub-enqueuedtime'] instanceof Date || typeof e.systemProperties['iothub-enqueuedtime'] === 'number');
      }
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });

  test(`EventHubConsumerClient (${name}): reading from enqueuedOn and from latest`, { timeout: 90000, skip }, async () => {
    const reg = registry();
    const { deviceId, records } = await sendTelemetry(reg, [{ n: 'before' }, { n: 'after' }], 20);
    const partitionId = String(records[0].partition);
    const client = new EventHubConsumerClient('$Default', connectionString);
    try {
      // Strictly after the first message's enqueued time: only the second.
      const since = new Date(records[0].enqueuedTime);
      const c = collect(client, partitionId, deviceId, { enqueuedOn: since }, (evs) => evs.length >= 1);
      const evs = await withTimeout(c.done, 30000, 'the event after enqueuedOn');
      await c.close();
      assert.deepEqual(evs.map(bodyOf), [{ n: 'after' }]);

      // From latest: nothing older, then what comes. The subscription has
      // no "attached" signal, so keep sending until one arrives.
      const l = collect(client, partitionId, deviceId, latestEventPosition, (got) => got.length >= 1);
      const device = await reg.get(deviceId);
      const dev = deviceClient(deviceConnectionString(deviceId, device.responseBody.authentication.symmetricKey.primaryKey), Mqtt);
      await dev.open();
      let stop = false;
      const sender = (async () => {
        for (let i = 0; !stop && i < 100; i++) {
          const m = new Message(JSON.stringify({ n: `new-${i}` }));
          await dev.sendEvent(m);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })();
      try {
        const got = await withTimeout(l.done, 30000, 'an event after latest');
        assert.match(bodyOf(got[0]).n, /^new-/, 'latest delivered an event sent before the subscription');
      } finally {
        stop = true;
        await sender;
        await dev.close();
        await l.close();
      }
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}

// The route C# and the Event Hubs samples take from an IoT Hub connection
// string: SASL PLAIN as the policy, a receiver on /messages/events, and the
// hub's amqp:link:redirect naming the Event Hub-compatible endpoint.
test('a receiver on /messages/events is redirected to the Event Hub-compatible endpoint', { timeout: 30000 }, async () => {
  const cs = ConnectionString.parse(env.serviceConnectionString);
  const host = cs.HostName.split(':')[0];
  const token = SharedAccessSignature.create(`${host}/messages/events`, cs.SharedAccessKeyName, cs.SharedAccessKey,
    Math.floor(Date.now() / 1000) + 300).toString();
  const container = rhea.create_container();
  const conn = container.connect({
    transport: 'tls', host, hostname: host, servername: host, port: 5671, reconnect: false,
    username: `${cs.SharedAccessKeyName}@sas.root.${hubName}`, password: token,
  });
  try {
    const err = await withTimeout(new Promise((resolve, reject) => {
      conn.on('receiver_error', (ctx) => resolve(ctx.receiver.error));
      conn.on('connection_error', (ctx) => reject(ctx.connection.error));
      conn.on('disconnected', (ctx) => reject(ctx.error || new Error('disconnected')));
      conn.open_receiver({ source: { address: `amqps://${host}/messages/events/$management` } });
    }), 20000, 'the redirect');
    assert.equal(err.condition, 'amqp:link:redirect');
    // The samples read the event hub's name from the address so, and its
    // host from hostname.
    const [, name] = /:\d+\/(.*)\/\$management/.exec(err.info.address);
    const tls = endpoints[0].connectionString;
    if (tls) {
      const endpointHost = /Endpoint=sb:\/\/([^/:;]+)/.exec(tls)[1];
      assert.equal(err.info.hostname, endpointHost);
      assert.equal(name, entityPath(tls));
      assert.equal(err.info.address, `amqps://${endpointHost}:5671/${name}/$management`);
    } else {
      assert.ok(err.info.hostname, JSON.stringify(err.info));
    }
  } finally {
    conn.close();
  }
});
