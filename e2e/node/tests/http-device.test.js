// SPDX-License-Identifier: MIT
'use strict';

// The official Node device SDK over HTTPS (azure-iot-device-http): telemetry
// (one message and a batch) read back through the emulator's record, and
// cloud-to-device messages polled, then completed, rejected or abandoned,
// with the same queue and feedback as the MQTT and AMQP devices.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Message } = require('azure-iot-device');
const { Http } = require('azure-iot-device-http');
const {
  uniqueId, deviceClient, deviceConnectionString, withDevice, inbox,
} = require('../lib/hub');
const {
  control, sendC2D, rejectAndAbandon, feedbackOf,
} = require('../lib/control');

test('telemetry over HTTP: one message and a batch, recorded as the other transports record them', { timeout: 60000 }, async () => {
  await withDevice('http-d2c', async (deviceId, key) => {
    const client = deviceClient(deviceConnectionString(deviceId, key), Http);
    try {
      await client.open();
      const one = new Message(JSON.stringify({ n: 1 }));
      one.messageId = uniqueId('mid');
      one.contentType = 'application/json';
      one.properties.add('alert', 'high');
      await client.sendEvent(one);
      await client.sendEventBatch([new Message('b1'), new Message('b2')]);
      const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
      assert.equal(res.status, 200);
      const bodies = res.body.map((m) => Buffer.from(m.body, 'base64').toString());
      assert.deepEqual(bodies, [JSON.stringify({ n: 1 }), 'b1', 'b2']);
      assert.equal(res.body[0].messageId, one.messageId);
      assert.equal(res.body[0].contentType, 'application/json');
      assert.deepEqual(res.body[0].properties, { alert: 'high' });
      assert.ok(res.body.every((m) => m.transport === 'https'), JSON.stringify(res.body.map((m) => m.transport)));
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
});

test('C2D over HTTP: complete, reject and abandon feed the queue and the feedback', { timeout: 60000 }, async () => {
  await withDevice('http-c2d', async (deviceId, key) => {
    const client = deviceClient(deviceConnectionString(deviceId, key), Http);
    const messages = inbox();
    client.on('message', (m) => messages.push(m));
    try {
      const ids = { complete: uniqueId('c') };
      await client.open();
      await sendC2D(deviceId, 'complete me', { 'iothub-messageid': ids.complete, 'iothub-ack': 'full', 'iothub-app-color': 'blue' });
      let msg = await messages.next('the first message');
      assert.equal(msg.messageId, ids.complete);
      assert.equal(msg.data.toString(), 'complete me');
      // Node keeps the header's name as the property's: iothub-app-color.
      assert.equal(msg.properties.getValue('iothub-app-color'), 'blue');
      await client.complete(msg);

      const { reject, abandon } = await rejectAndAbandon(client, deviceId, messages);
      assert.deepEqual(await feedbackOf(deviceId, 3),
        [[abandon, 'Success'], [ids.complete, 'Success'], [reject, 'Rejected']].sort());
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
    }
  });
});
