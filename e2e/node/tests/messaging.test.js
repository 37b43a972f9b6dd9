// SPDX-License-Identifier: MIT
'use strict';

// Device-to-cloud and cloud-to-device messages through the official device
// SDK over MQTT and MQTT over WebSockets, checked against the emulator's
// own record of them (the /emulator control API).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Message } = require('azure-iot-device');
const {
  transports, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');
const { control, pendingC2D, sendC2D, eventually } = require('../lib/control');

// recordedTransport is how the emulator labels each SDK transport.
const recordedTransport = { MQTT: 'mqtt', 'MQTT-WS': 'mqtt-ws' };

for (const { name, Transport } of transports) {
  test(`sendEvent with properties is recorded by the emulator over ${name}`, { timeout: 60000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-d2c');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Transport);
    try {
      await client.open();
      const msg = new Message(JSON.stringify({ temperature: 21.5 }));
      msg.messageId = uniqueId('mid');
      msg.correlationId = 'corr/1';
      msg.contentType = 'application/json';
      msg.contentEncoding = 'utf-8';
      const props = { 'alert level': 'high & rising', plus: 'a+b=c', unicode: 'naïve ✓', empty: '' };
      for (const [k, v] of Object.entries(props)) {
        msg.properties.add(k, v);
      }
      await client.sendEvent(msg);

      const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.length, 1, `recorded messages: ${JSON.stringify(res.body)}`);
      const got = res.body[0];
      assert.equal(Buffer.from(got.body, 'base64').toString(), JSON.stringify({ temperature: 21.5 }));
      assert.equal(got.deviceId, deviceId);
      assert.equal(got.messageId, msg.messageId);
      assert.equal(got.correlationId, 'corr/1');
      assert.equal(got.contentType, 'application/json');
      assert.equal(got.contentEncoding, 'utf-8');
      assert.equal(got.transport, recordedTransport[name]);
      assert.deepEqual(got.properties, props);
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });

  test(`C2D messages reach client.on('message') over ${name} and complete`, { timeout: 60000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-c2d');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Transport);
    try {
      // Queued before the device listens: delivered once it subscribes.
      const first = uniqueId('c2d');
      await sendC2D(deviceId, 'hello device', {
        'iothub-messageid': first,
        'iothub-correlationid': 'corr 1',
        'iothub-ack': 'full',
        'iothub-app-color': 'deep blue',
        'iothub-app-expr': 'a+b=c&d/e%f',
      });
      const messages = [];
      let arrived;
      client.on('message', (msg) => {
        messages.push(msg);
        if (arrived) {
          arrived();
        }
      });
      const next = async (what) => {
        while (messages.length === 0) {
          await withTimeout(new Promise((resolve) => { arrived = resolve; }), 15000, what);
        }
        return messages.shift();
      };
      await client.open();

      const msg = await next('the queued C2D message');
      assert.equal(msg.messageId, first);
      assert.equal(msg.correlationId, 'corr 1');
      assert.equal(msg.to, `/devices/${deviceId}/messages/deviceBound`);
      assert.equal(msg.data.toString(), 'hello device');
      assert.equal(msg.properties.getValue('color'), 'deep blue');
      assert.equal(msg.properties.getValue('expr'), 'a+b=c&d/e%f');
      assert.equal(msg.properties.getValue('iothub-ack'), 'full');
      assert.ok(new Date(msg.expiryTimeUtc) > new Date(), `expiry ${msg.expiryTimeUtc} is in the future`);
      await client.complete(msg);

      // While listening, a new message arrives at once.
      const second = uniqueId('c2d');
      await sendC2D(deviceId, 'second', { 'iothub-messageid': second });
      const msg2 = await next('the second C2D message');
      assert.equal(msg2.messageId, second);
      assert.equal(msg2.data.toString(), 'second');
      await client.complete(msg2);

      // The PUBACKs completed both: the queue is empty, feedback recorded.
      await eventually('an empty C2D queue', async () => (await pendingC2D(deviceId)).length === 0);
      const fb = await control('GET', '/emulator/feedback');
      assert.equal(fb.status, 200);
      const mine = fb.body.filter((f) => f.deviceId === deviceId);
      assert.deepEqual(mine.map((f) => [f.originalMessageId, f.statusCode]), [[first, 'Success']]);
      assert.deepEqual(messages, [], 'no message delivered twice');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}
