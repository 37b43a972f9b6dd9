// SPDX-License-Identifier: MIT
'use strict';

// The hub's fault-injection hook, as Microsoft's own SDK suites use it
// (azure-iot-sdk-node e2etests/test/*_disconnect.js): the device sends a
// message carrying AzIoTHub_FaultOperationType and friends, the hub breaks
// its connection after the delay and refuses reconnects for the duration.
// Here the official device SDK, retrying as its default policy decides,
// reconnects by itself, and telemetry, reported and desired properties,
// C2D and methods work again. The same through POST /emulator/faults.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Amqp, AmqpWs } = require('azure-iot-device-amqp');
const { ExponentialBackOffWithJitter } = require('azure-iot-common');
const {
  transports, noRetry, uniqueId, registry, serviceClient, createDevice, deleteQuietly, deviceConnectionString,
  withTimeout, invokeWhenListening,
} = require('../lib/hub');
const { control, sendC2D, eventually } = require('../lib/control');

const recordedTransport = { MQTT: 'mqtt', 'MQTT-WS': 'mqtt-ws', AMQP: 'amqp', 'AMQP-WS': 'amqp-ws' };

// promptRetry is the SDK's default policy with its backoff taken out: the
// same judgement of which errors to retry, but a retry every 50 ms. After
// a reconnect the SDK re-enables C2D, methods and desired properties in
// three retrying operations of its own; with the default backoff one of
// them can still be waiting for its next attempt when a test closes the
// client, and it then reconnects the closed client, which is refused once
// the device is deleted, and keeps trying for the policy's four minutes,
// keeping the test process alive (azure-iot-device 1.18.4). Retrying
// promptly, all three are done long before the test closes the client.
const sdkPolicy = new ExponentialBackOffWithJitter();
const promptRetry = {
  shouldRetry: (err) => sdkPolicy.shouldRetry(err),
  nextRetryTimeout: () => 50,
};

// faultMessage carries the hook's properties, spelled as the SDKs' suites
// spell them; delay and duration are seconds.
function faultMessage(type, reason, delay, duration) {
  const m = new Message('fault injection');
  m.properties.add('AzIoTHub_FaultOperationType', type);
  m.properties.add('AzIoTHub_FaultOperationCloseReason', reason);
  m.properties.add('AzIoTHub_FaultOperationDelayInSecs', String(delay));
  m.properties.add('AzIoTHub_FaultOperationDurationInSecs', String(duration));
  return m;
}

// faults returns the emulator's records of a device's faults.
async function faults(deviceId) {
  const res = await control('GET', `/emulator/faults?deviceId=${encodeURIComponent(deviceId)}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

// recordedMessages returns what the emulator recorded from a device.
async function recordedMessages(deviceId) {
  const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

// newDevice registers a device and connects it (openDevice).
async function newDevice(reg, prefix, Transport) {
  const deviceId = uniqueId(prefix);
  const device = await createDevice(reg, deviceId);
  return openDevice(deviceId, device.authentication.symmetricKey.primaryKey, Transport);
}

// openDevice opens a client that retries as the SDK's default policy does
// (promptRetry), listening for methods, desired properties and C2D.
async function openDevice(deviceId, key, Transport) {
  const client = DeviceClient.fromConnectionString(deviceConnectionString(deviceId, key), Transport);
  client.setRetryPolicy(promptRetry);
  const d = { deviceId, key, client, errors: [], disconnects: [], c2d: [], desired: [] };
  client.on('error', (err) => d.errors.push(err));
  client.on('disconnect', (r) => d.disconnects.push(r));
  client.on('message', (msg) => {
    d.c2d.push(msg);
    client.complete(msg).catch((err) => d.errors.push(err));
  });
  client.onDeviceMethod('ping', (request, response) => {
    response.send(200, request.payload).catch((err) => d.errors.push(err));
  });
  try {
    await client.open();
    d.twin = await client.getTwin();
  } catch (err) {
    await client.close().catch(() => {});
    throw err;
  }
  d.twin.on('properties.desired', (delta) => d.desired.push(delta));
  // A twin GET after the listener is answered only once the desired
  // subscription is in place (see desired-properties.test.js).
  await d.twin.get();
  return d;
}

// recover returns the device's client once it is connected again. The SDK
// reconnects by itself after a clean close and over WebSockets. After a
// TCP reset over MQTT/TLS it does not: mqtt.js reports the socket's raw
// ECONNRESET error, which the SDK's default error filter does not know,
// so the client gives up and emits 'disconnect' (its own debug log says
// "transport disconnect event: Error: read ECONNRESET"). An application
// then does what the SDK's samples do on 'disconnect': it opens a client
// again, here until the hub admits it once the duration is over.
async function recover(d, Transport, selfHealing) {
  if (selfHealing) {
    return d;
  }
  await eventually('the SDK to report the reset', () => d.disconnects.length > 0, 15000);
  const cause = d.disconnects[0].transportObj;
  assert.match(String(cause && (cause.code || cause.message)), /ECONNRESET/, 'the disconnect\'s cause');
  await d.client.close();
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      return await openDevice(d.deviceId, d.key, Transport);
    } catch (err) {
      if (Date.now() > deadline) {
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

// worksAgain checks each feature after the reconnect.
async function worksAgain(reg, d, marker) {
  const service = serviceClient();
  const result = await invokeWhenListening(service, d.deviceId, { methodName: 'ping', payload: { marker }, responseTimeoutInSeconds: 10 }, 20000);
  assert.equal(result.status, 200);
  assert.deepEqual(result.payload, { marker });

  await reg.updateTwin(d.deviceId, { properties: { desired: { marker } } }, '*');
  await eventually('the desired patch', () => d.desired.some((delta) => delta.marker === marker), 15000);

  await new Promise((resolve, reject) => {
    d.twin.properties.reported.update({ marker }, (err) => (err ? reject(err) : resolve()));
  });
  const { responseBody: twin } = await reg.getTwin(d.deviceId);
  assert.equal(twin.properties.reported.marker, marker, 'reported property after the reconnect');

  await sendC2D(d.deviceId, `c2d ${marker}`, { 'iothub-messageid': marker });
  await eventually('the C2D message', () => d.c2d.some((m) => m.messageId === marker), 15000);

  const m = new Message(`telemetry ${marker}`);
  m.messageId = marker;
  await d.client.sendEvent(m);
  const recorded = await recordedMessages(d.deviceId);
  assert.ok(recorded.some((r) => r.messageId === marker), `telemetry ${marker} recorded`);
}

// waitApplied waits for the device's newest fault to be applied.
async function waitApplied(deviceId) {
  let rec;
  await eventually('the fault to be applied', async () => {
    const fs = await faults(deviceId);
    rec = fs[fs.length - 1];
    return rec && rec.outcome !== 'pending';
  }, 15000);
  return rec;
}

for (const { name, Transport } of transports) {
  for (const type of ['KillTcp', 'ShutDownMqtt']) {
    // Behind a TCP proxy (docker's userland proxy in compose-e2e) the
    // client's side of a reset connection is closed with a FIN, so the
    // SDK sees a clean close and reconnects by itself.
    const proxied = process.env.IOTHUB_E2E_TCP_PROXIED === '1';
    const selfHealing = proxied || !(type === 'KillTcp' && name === 'MQTT');
    const recovers = selfHealing ? 'recovers by itself' : 'reports the reset and recovers when the app opens a client again';
    test(`the device's ${type} fault message over ${name}: disconnected, refused for the duration, ${recovers}`, { timeout: 90000 }, async () => {
      const reg = registry();
      let d = await newDevice(reg, 'node-fault', Transport);
      try {
        await worksAgain(reg, d, 'before');

        // The hub does not acknowledge the fault message over MQTT: the
        // SDK's retry policy would send it again after the reconnect and
        // fault again (the Java suite sets an expiry for this reason). So
        // this one send goes without retries; the reconnects retry.
        d.client.setRetryPolicy(noRetry);
        const sent = d.client.sendEvent(faultMessage(type, ' severs the connection ', 1, 2));
        d.client.setRetryPolicy(promptRetry);
        await withTimeout(assert.rejects(sent), 15000, 'the fault message to fail unacknowledged');

        const rec = await waitApplied(d.deviceId);
        assert.equal(rec.outcome, 'applied', JSON.stringify(rec));
        assert.equal(rec.source, 'message');
        assert.equal(rec.faultType, type);
        assert.equal(rec.closeReason, ' severs the connection ');
        assert.equal(rec.connection.transport, recordedTransport[name]);
        const recorded = await recordedMessages(d.deviceId);
        assert.equal(recorded.filter((r) => r.properties.AzIoTHub_FaultOperationType === type).length, 1, 'the fault message is recorded once');

        d = await recover(d, Transport, selfHealing);
        await worksAgain(reg, d, `after-${type}`);
        const [after] = (await faults(d.deviceId)).slice(-1);
        assert.ok(after.refused >= 1, `reconnects refused during the duration: ${after.refused}`);
        assert.deepEqual(d.disconnects, [], 'the client reported a disconnect instead of recovering');
        assert.deepEqual(d.errors, []);
      } finally {
        await d.client.close();
        await deleteQuietly(reg, d.deviceId);
      }
    });

    test(`POST /emulator/faults ${type} over ${name}: the device ${recovers}`, { timeout: 90000 }, async () => {
      const reg = registry();
      let d = await newDevice(reg, 'node-fault-ctl', Transport);
      try {
        const res = await control('POST', '/emulator/faults', {
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ deviceId: d.deviceId, faultType: type, closeReason: 'test control', delayInSecs: 0.5, durationInSecs: 2 }),
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.source, 'control');
        const rec = await waitApplied(d.deviceId);
        assert.equal(rec.outcome, 'applied', JSON.stringify(rec));
        assert.equal(rec.connection.transport, recordedTransport[name]);

        d = await recover(d, Transport, selfHealing);
        await worksAgain(reg, d, `after-control-${type}`);
        const [after] = (await faults(d.deviceId)).slice(-1);
        assert.ok(after.refused >= 1, `reconnects refused during the duration: ${after.refused}`);
        assert.deepEqual(d.disconnects, [], 'the client reported a disconnect instead of recovering');
        assert.deepEqual(d.errors, []);
      } finally {
        await d.client.close();
        await deleteQuietly(reg, d.deviceId);
      }
    });
  }
}

// Over AMQP, the kinds of the SDK's own suites (d2c_, c2d_, method_ and
// twin_disconnect.js): the connection (reset, closed with an error,
// closed cleanly), the session, the $cbs links, and the telemetry, C2D,
// method and twin links. The hub accepts the fault message, as any
// telemetry; the SDK takes each break for the loss of its connection and
// reconnects by itself. As in those suites, no duration:
// azure-iot-amqp-base throws inside its own attach callback when a link is
// refused while its other attaches are in flight (its sender map was
// emptied when it began disconnecting), rhea then ends the socket and the
// SDK waits out its 45 s rundown timer, so the refusals of the duration
// are tested in Go (emulator/internal/amqpapi faults_test.go).
const amqpFaults = [
  { name: 'AMQP', Transport: Amqp, kinds: ['KillTcp', 'KillAmqpConnection', 'ShutDownAmqp', 'KillAmqpCBSLinkReq', 'KillAmqpSession', 'KillAmqpCBSLinkResp', 'KillAmqpD2CLink', 'KillAmqpC2DLink', 'KillAmqpMethodReqLink', 'KillAmqpTwinLinkReq', 'KillAmqpTwinLinkResp'] },
  { name: 'AMQP-WS', Transport: AmqpWs, kinds: ['KillTcp', 'KillAmqpConnection', 'KillAmqpSession', 'KillAmqpMethodRespLink'] },
];

for (const { name, Transport, kinds } of amqpFaults) {
  for (const type of kinds) {
    test(`the device's ${type} fault message over ${name}: accepted, disconnected, recovers by itself`, { timeout: 90000 }, async () => {
      const reg = registry();
      const d = await newDevice(reg, 'node-amqp-fault', Transport);
      try {
        await worksAgain(reg, d, 'before');
        await d.client.sendEvent(faultMessage(type, ' severs it ', 1, 0));

        const rec = await waitApplied(d.deviceId);
        assert.equal(rec.outcome, 'applied', JSON.stringify(rec));
        assert.equal(rec.source, 'message');
        assert.equal(rec.faultType, type);
        assert.equal(rec.closeReason, ' severs it ');
        assert.equal(rec.connection.transport, recordedTransport[name]);
        assert.ok(rec.connection.remoteAddress, 'the remote address is recorded');
        const recorded = await recordedMessages(d.deviceId);
        assert.equal(recorded.filter((r) => r.properties.AzIoTHub_FaultOperationType === type).length, 1, 'the fault message is recorded once');

        await worksAgain(reg, d, `after-${type}`);
        assert.deepEqual(d.disconnects, [], 'the client reported a disconnect instead of recovering');
      } finally {
        await d.client.close();
        await deleteQuietly(reg, d.deviceId);
      }
    });
  }

  for (const type of ['KillTcp', 'KillAmqpSession']) {
    test(`POST /emulator/faults ${type} over ${name}: the device recovers by itself`, { timeout: 90000 }, async () => {
      const reg = registry();
      const d = await newDevice(reg, 'node-amqp-fault-ctl', Transport);
      try {
        const res = await control('POST', '/emulator/faults', {
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ deviceId: d.deviceId, faultType: type, closeReason: 'test control', delayInSecs: 0.5 }),
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const rec = await waitApplied(d.deviceId);
        assert.equal(rec.outcome, 'applied', JSON.stringify(rec));
        assert.equal(rec.connection.transport, recordedTransport[name]);

        await worksAgain(reg, d, `after-control-${type}`);
        assert.deepEqual(d.disconnects, [], 'the client reported a disconnect instead of recovering');
      } finally {
        await d.client.close();
        await deleteQuietly(reg, d.deviceId);
      }
    });
  }
}
