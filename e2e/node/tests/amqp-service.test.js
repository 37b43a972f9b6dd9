// SPDX-License-Identifier: MIT
'use strict';

// The service SDK's AMQP surface (azure-iothub Client over AMQPS on 5671 and
// AMQP over WebSockets on 443): cloud-to-device sends, delivery feedback
// and the SDK's error types for the hub's AMQP errors.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client: ServiceClient, Amqp, AmqpWs } = require('azure-iothub');
const { Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const {
  env, noRetry, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout,
} = require('../lib/hub');
const { pendingC2D, sendC2D } = require('../lib/control');

const amqpTransports = [
  { name: 'AMQP', Transport: Amqp },
  { name: 'AMQP-WS', Transport: AmqpWs },
];

function amqpServiceClient(Transport) {
  const c = ServiceClient.fromConnectionString(env.serviceConnectionString, Transport);
  c.setRetryPolicy(noRetry);
  return c;
}

// nextFeedback resolves with the next feedback message on the receiver.
function nextFeedback(receiver) {
  return new Promise((resolve, reject) => {
    const onMessage = (msg) => {
      receiver.removeListener('error', onError);
      resolve(msg);
    };
    const onError = (err) => {
      receiver.removeListener('message', onMessage);
      reject(err);
    };
    receiver.once('message', onMessage);
    receiver.once('error', onError);
  });
}

for (const { name, Transport } of amqpTransports) {
  test(`Client.send over ${name} with iothub-ack full, then the feedback receiver gets Success`, { timeout: 90000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-amqp-c2d');
    const device = await createDevice(reg, deviceId);
    const service = amqpServiceClient(Transport);
    const dev = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Mqtt);
    try {
      await service.open();
      const receiver = (await service.getFeedbackReceiver()).result;

      // A UUID-looking id goes out as an AMQP uuid; feedback names it in
      // its string form.
      const messageId = crypto.randomUUID();
      const msg = new Message('turn on');
      msg.messageId = messageId;
      msg.ack = 'full';
      msg.properties.add('command', 'on');
      await service.send(deviceId, msg);
      const queued = await pendingC2D(deviceId);
      assert.equal(queued.length, 1);
      assert.equal(queued[0].messageId, messageId);
      assert.equal(queued[0].ack, 'full');
      assert.deepEqual(queued[0].properties, { command: 'on' });

      const feedback = nextFeedback(receiver);
      await dev.open();
      const got = await withTimeout(new Promise((resolve) => dev.once('message', resolve)), 20000, 'the C2D message on the device');
      assert.equal(got.messageId, messageId);
      assert.equal(got.data.toString(), 'turn on');
      await dev.complete(got);

      const fb = await withTimeout(feedback, 30000, 'feedback');
      assert.equal(fb.contentType, 'application/vnd.microsoft.iothub.feedback.json');
      const records = JSON.parse(fb.data.toString());
      assert.equal(records.length, 1, JSON.stringify(records));
      assert.equal(records[0].originalMessageId, messageId);
      assert.equal(records[0].deviceId, deviceId);
      assert.equal(records[0].statusCode, 'Success');
      assert.equal(records[0].deviceGenerationId, device.generationId);
      await receiver.complete(fb);
    } finally {
      await dev.close();
      await service.close();
      await deleteQuietly(reg, deviceId);
    }
  });

  test(`Client.send over ${name} maps the hub's errors: unknown device, full queue`, { timeout: 60000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-amqp-full');
    await createDevice(reg, deviceId);
    const service = amqpServiceClient(Transport);
    try {
      await service.open();
      await assert.rejects(service.send(uniqueId('node-nosuch'), new Message('x')), (err) => {
        assert.equal(err.constructor.name, 'DeviceNotFoundError', String(err));
        return true;
      });
      for (let i = 0; i < 50; i++) {
        await sendC2D(deviceId, `m${i}`, { 'iothub-messageid': `m${i}` });
      }
      await assert.rejects(service.send(deviceId, new Message('one too many')), (err) => {
        assert.equal(err.constructor.name, 'DeviceMaximumQueueDepthExceededError', String(err));
        return true;
      });
      assert.equal((await pendingC2D(deviceId)).length, 50);
      // The link survives the rejections: a message to a device with room goes.
      const other = uniqueId('node-amqp-room');
      await createDevice(reg, other);
      await service.send(other, new Message('fits'));
      assert.equal((await pendingC2D(other)).length, 1);
      await deleteQuietly(reg, other);
    } finally {
      await service.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}
