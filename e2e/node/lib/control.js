// SPDX-License-Identifier: MIT
'use strict';

// The emulator's test-control API (/emulator/...), called as the
// iothubowner policy. These routes exist only on the emulator; tests use
// them to queue cloud-to-device messages and to read what devices sent.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { ConnectionString, SharedAccessSignature } = require('azure-iothub');
const { env } = require('./hub');

// ownerAuthorization signs a hub-level SAS token for the service
// connection string's policy with the SDK's own helper.
function ownerAuthorization() {
  const cs = ConnectionString.parse(env.serviceConnectionString);
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  return SharedAccessSignature.create(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, expiry).toString();
}

// control calls an /emulator route and returns the status, the headers
// and the body (parsed when it is JSON).
async function control(method, path, { headers = {}, body } = {}) {
  const { HostName } = ConnectionString.parse(env.serviceConnectionString);
  const res = await fetch(`https://${HostName}${path}`, {
    method,
    headers: { Authorization: ownerAuthorization(), ...headers },
    body,
  });
  const text = await res.text();
  const json = (res.headers.get('content-type') || '').includes('application/json');
  return { status: res.status, headers: res.headers, body: json && text ? JSON.parse(text) : text };
}

// pendingC2D returns the cloud-to-device messages queued for a device.
async function pendingC2D(deviceId) {
  const res = await control('GET', `/emulator/devices/${encodeURIComponent(deviceId)}/messages/devicebound`);
  if (res.status !== 200) {
    throw new Error(`GET pending C2D of ${deviceId}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

// sendC2D queues a cloud-to-device message; headers carry its properties
// (iothub-messageid, iothub-app-<name>, ...).
async function sendC2D(deviceId, body, headers) {
  const res = await control('POST', `/emulator/devices/${encodeURIComponent(deviceId)}/messages/devicebound`, { headers, body });
  if (res.status !== 200) {
    throw new Error(`POST C2D to ${deviceId}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

// eventually polls check (an async predicate) until it holds or ms pass.
async function eventually(what, check, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// rejectAndAbandon has an open device client reject one message and
// abandon another, which comes again (its delivery counted) and is
// completed; messages is the inbox (lib/hub.js) of the client's 'message'
// events. It returns the two message ids.
async function rejectAndAbandon(client, deviceId, messages) {
  const ids = { reject: `r-${crypto.randomUUID()}`, abandon: `a-${crypto.randomUUID()}` };
  await sendC2D(deviceId, 'reject me', { 'iothub-messageid': ids.reject, 'iothub-ack': 'negative' });
  let msg = await messages.next('the message to reject');
  assert.equal(msg.messageId, ids.reject);
  await client.reject(msg);

  await sendC2D(deviceId, 'abandon me', { 'iothub-messageid': ids.abandon, 'iothub-ack': 'full' });
  msg = await messages.next('the message to abandon');
  assert.equal(msg.messageId, ids.abandon);
  await client.abandon(msg);
  msg = await messages.next('the abandoned message, delivered again');
  assert.equal(msg.messageId, ids.abandon);
  const [pending] = await pendingC2D(deviceId);
  assert.equal(pending.deliveryCount, 2, 'an abandon counts the delivery');
  await client.complete(msg);
  await eventually('an empty queue', async () => (await pendingC2D(deviceId)).length === 0);
  return ids;
}

// feedbackOf waits for n feedback records about deviceId's messages and
// returns them as sorted [originalMessageId, statusCode] pairs.
async function feedbackOf(deviceId, n) {
  let fb;
  await eventually(`${n} feedback records`, async () => {
    fb = (await control('GET', '/emulator/feedback')).body.filter((f) => f.deviceId === deviceId);
    return fb.length >= n;
  });
  return fb.map((f) => [f.originalMessageId, f.statusCode]).sort();
}

module.exports = {
  control, pendingC2D, sendC2D, eventually, rejectAndAbandon, feedbackOf,
};
