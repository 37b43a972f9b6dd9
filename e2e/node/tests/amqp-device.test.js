// SPDX-License-Identifier: MIT
'use strict';

// The official Node device SDK over AMQP (azure-iot-device-amqp: Amqp on
// 5671, AmqpWs on wss://host/$iothub/websocket): the tutorial flow,
// desired properties while connected and after a reconnect, C2D with each
// outcome and its feedback, telemetry read back through the emulator's
// record and the Event Hub-compatible endpoint (@azure/event-hubs),
// modules, token renewal, X.509 and the refusals the SDK maps to its error
// types.

const crypto = require('node:crypto');
const fs = require('node:fs');
const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  Client: DeviceClient, ModuleClient, Message, SharedAccessSignature,
} = require('azure-iot-device');
const { Amqp, AmqpWs } = require('azure-iot-device-amqp');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
const {
  noRetry, uniqueId, registry, serviceClient, deviceClient, deleteQuietly, deviceConnectionString,
  withTimeout, invokeWhenListening, withDevice, inbox, sleep, hostName,
} = require('../lib/hub');
const {
  control, sendC2D, eventually, rejectAndAbandon, feedbackOf,
} = require('../lib/control');
const { collect, bodyOf } = require('../lib/eventhubs');

const amqpTransports = [
  { name: 'AMQP', Transport: Amqp, recorded: 'amqp' },
  { name: 'AMQP-WS', Transport: AmqpWs, recorded: 'amqp-ws' },
];

// updateSas is Client.updateSharedAccessSignature, which takes only a
// callback, as a promise.
function updateSas(client, sas) {
  return new Promise((resolve, reject) => client.updateSharedAccessSignature(sas, (err, res) => (err ? reject(err) : resolve(res))));
}

// readEvent reads, with @azure/event-hubs, the first event of deviceId on
// one partition of the Event Hub-compatible endpoint.
async function readEvent(connectionString, partitionId, deviceId) {
  const client = new EventHubConsumerClient('$Default', connectionString);
  const c = collect(client, partitionId, deviceId, earliestEventPosition, (evs) => evs.length >= 1);
  try {
    const [e] = await withTimeout(c.done, 30000, `${deviceId}'s event on partition ${partitionId}`);
    return e;
  } finally {
    await c.close();
    await client.close();
  }
}

async function connectionState(reg, deviceId) {
  const { responseBody } = await reg.get(deviceId);
  return responseBody.connectionState;
}

for (const { name, Transport, recorded } of amqpTransports) {
  test(`tutorial flow over ${name}: rebootDevice, then reported rebootTime`, { timeout: 60000 }, async () => {
    await withDevice('amqp-dm', async (deviceId, key, reg) => {
      const service = serviceClient();
      const client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      try {
        await client.open();
        assert.equal(await connectionState(reg, deviceId), 'Connected', 'registry state after open');
        const rebooted = new Promise((resolve, reject) => {
          client.onDeviceMethod('rebootDevice', (request, response) => {
            (async () => {
              await response.send(200, { rebooting: true, delay: request.payload.delay });
              const twin = await client.getTwin();
              const rebootTime = new Date().toISOString();
              await new Promise((ok, fail) => {
                twin.properties.reported.update({ iothubDM: { reboot: { lastReboot: rebootTime } } }, (err) => (err ? fail(err) : ok()));
              });
              return rebootTime;
            })().then(resolve, reject);
          });
        });
        const result = await invokeWhenListening(service, deviceId, {
          methodName: 'rebootDevice', payload: { delay: 5 }, responseTimeoutInSeconds: 30,
        });
        assert.equal(result.status, 200);
        assert.deepEqual(result.payload, { rebooting: true, delay: 5 });
        const rebootTime = await withTimeout(rebooted, 30000, 'the reported rebootTime');
        const { responseBody: twin } = await reg.getTwin(deviceId);
        assert.equal(twin.properties.reported.iothubDM.reboot.lastReboot, rebootTime);
        const methods = await control('GET', `/emulator/methods?deviceId=${encodeURIComponent(deviceId)}`);
        assert.ok(methods.body.some((m) => m.methodName === 'rebootDevice' && m.status === 200), JSON.stringify(methods.body));
        assert.deepEqual(client.errors, []);
      } finally {
        await client.close();
      }
      await eventually('the device to be disconnected after close', async () => (await connectionState(reg, deviceId)) === 'Disconnected');
    });
  });

  test(`desired properties over ${name}: while connected and after a reconnect`, { timeout: 60000 }, async () => {
    await withDevice('amqp-desired', async (deviceId, key, reg) => {
      let client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      try {
        await client.open();
        let twin = await client.getTwin();
        const updates = inbox();
        twin.on('properties.desired', (delta) => updates.push(delta));
        // The first event is the twin's current desired section.
        await updates.next('the initial desired properties');
        await reg.updateTwin(deviceId, { properties: { desired: { fanSpeed: 3 } } }, '*');
        let delta = await updates.next('the desired update while connected');
        assert.equal(delta.fanSpeed, 3);
        assert.equal(typeof delta.$version, 'number');
        await client.close();

        // Changed while the device is away: the next getTwin has it, and
        // pushes resume on the new connection.
        await reg.updateTwin(deviceId, { properties: { desired: { fanSpeed: 5 } } }, '*');
        client = deviceClient(deviceConnectionString(deviceId, key), Transport);
        await client.open();
        twin = await client.getTwin();
        assert.equal(twin.properties.desired.fanSpeed, 5, 'desired after reconnect');
        const again = inbox();
        twin.on('properties.desired', (d) => again.push(d));
        await again.next('the initial desired properties after reconnect');
        await reg.updateTwin(deviceId, { properties: { desired: { fanSpeed: 7 } } }, '*');
        delta = await again.next('the desired update after reconnect');
        assert.equal(delta.fanSpeed, 7);
        assert.deepEqual(client.errors, []);
      } finally {
        await client.close();
      }
    });
  });

  test(`C2D over ${name}: complete, reject and abandon feed the queue and the feedback`, { timeout: 60000 }, async () => {
    await withDevice('amqp-c2d', async (deviceId, key) => {
      const client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      const messages = inbox();
      client.on('message', (m) => messages.push(m));
      try {
        const ids = { complete: uniqueId('c') };
        await sendC2D(deviceId, 'complete me', {
          'iothub-messageid': ids.complete, 'iothub-correlationid': 'corr 1', 'iothub-ack': 'full', 'iothub-app-color': 'deep blue',
        });
        await client.open();
        let msg = await messages.next('the queued message');
        assert.equal(msg.messageId, ids.complete);
        assert.equal(msg.correlationId, 'corr 1');
        assert.equal(msg.to, `/devices/${deviceId}/messages/deviceBound`);
        assert.equal(msg.data.toString(), 'complete me');
        assert.equal(msg.properties.getValue('color'), 'deep blue');
        assert.equal(msg.ack, 'full');
        await client.complete(msg);

        const { reject, abandon } = await rejectAndAbandon(client, deviceId, messages);
        assert.deepEqual(await feedbackOf(deviceId, 3),
          [[abandon, 'Success'], [ids.complete, 'Success'], [reject, 'Rejected']].sort());
        assert.deepEqual(messages.items, [], 'no message delivered twice');
        assert.deepEqual(client.errors, []);
      } finally {
        await client.close();
      }
    });
  });

  test(`telemetry over ${name} is recorded as MQTT telemetry is`, { timeout: 60000 }, async () => {
    await withDevice('amqp-d2c', async (deviceId, key) => {
      const client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      try {
        await client.open();
        const msg = new Message(JSON.stringify({ temperature: 21.5 }));
        msg.messageId = crypto.randomUUID(); // the SDK sends UUID-looking ids as AMQP uuid
        msg.correlationId = 'corr/1';
        msg.contentType = 'application/json';
        msg.contentEncoding = 'utf-8';
        const props = { 'alert level': 'high & rising', unicode: 'naïve ✓', empty: '' };
        for (const [k, v] of Object.entries(props)) {
          msg.properties.add(k, v);
        }
        await client.sendEvent(msg);
        const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
        assert.equal(res.status, 200);
        assert.equal(res.body.length, 1, JSON.stringify(res.body));
        const got = res.body[0];
        assert.equal(Buffer.from(got.body, 'base64').toString(), JSON.stringify({ temperature: 21.5 }));
        assert.equal(got.messageId, msg.messageId);
        assert.equal(got.correlationId, 'corr/1');
        assert.equal(got.contentType, 'application/json');
        assert.equal(got.contentEncoding, 'utf-8');
        assert.equal(got.transport, recorded);
        assert.equal(got.connectionAuthMethod, 'sas');
        assert.deepEqual(got.properties, props);
        assert.deepEqual(client.errors, []);

        // Backends read it from the Event Hub-compatible endpoint (TestNodeSDK
        // always names it; against an external hub it may be left out).
        const ehcs = process.env.EVENTHUB_CONNECTION_STRING;
        if (ehcs) {
          const e = await readEvent(ehcs, String(got.partition), deviceId);
          assert.deepEqual(bodyOf(e), { temperature: 21.5 });
          assert.equal(e.messageId, msg.messageId);
          assert.equal(e.correlationId, 'corr/1');
          assert.deepEqual(e.properties, props);
          assert.equal(e.sequenceNumber, got.partitionSequenceNumber);
          assert.equal(JSON.parse(e.systemProperties['iothub-connection-auth-method']).type, 'sas');
        }
      } finally {
        await client.close();
      }
    });
  });

  test(`a module over ${name}: twin, methods, telemetry and its input link`, { timeout: 60000 }, async () => {
    await withDevice('amqp-edge', async (deviceId, _key, reg) => {
      const moduleId = 'filter';
      await reg.addModule({ deviceId, moduleId });
      const { responseBody: mod } = await reg.getModule(deviceId, moduleId);
      const cs = `${deviceConnectionString(deviceId, mod.authentication.symmetricKey.primaryKey)};ModuleId=${moduleId}`;
      const client = ModuleClient.fromConnectionString(cs, Transport);
      client.setRetryPolicy(noRetry);
      const errors = [];
      client.on('error', (err) => errors.push(err));
      const service = serviceClient();
      try {
        await client.open();
        client.on('inputMessage', () => {});
        const twin = await client.getTwin();
        await new Promise((ok, fail) => twin.properties.reported.update({ mode: 'filtering' }, (err) => (err ? fail(err) : ok())));
        const { responseBody: mtwin } = await reg.getModuleTwin(deviceId, moduleId);
        assert.equal(mtwin.properties.reported.mode, 'filtering');

        client.onMethod('ping', (request, response) => response.send(200, { pong: request.payload }));
        let result;
        const deadline = Date.now() + 10000;
        for (;;) {
          try {
            ({ result } = await service.invokeDeviceMethod(deviceId, moduleId, { methodName: 'ping', payload: 7, responseTimeoutInSeconds: 10 }));
            break;
          } catch (err) {
            if (Date.now() > deadline || !/404103/.test(String(err.responseBody))) {
              throw err;
            }
            await sleep(200);
          }
        }
        assert.equal(result.status, 200);
        assert.deepEqual(result.payload, { pong: 7 });

        await client.sendOutputEvent('out1', new Message('filtered'));
        const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
        const got = res.body.find((m) => m.moduleId === moduleId);
        assert.ok(got, JSON.stringify(res.body));
        assert.equal(Buffer.from(got.body, 'base64').toString(), 'filtered');
        assert.equal(got.transport, recorded);
        assert.deepEqual(errors, []);
      } finally {
        await client.close();
      }
    });
  });

  test(`token renewal over ${name}: new tokens on the same connection (a refused one makes the SDK disconnect)`, { timeout: 60000 }, async () => {
    await withDevice('amqp-renew', async (deviceId, key, reg) => {
      const sas = (secs, k = key) => SharedAccessSignature.create(hostName(), deviceId, k, Math.floor(Date.now() / 1000) + secs).toString();
      const client = DeviceClient.fromSharedAccessSignature(sas(3600), Transport);
      client.setRetryPolicy(noRetry);
      const errors = [];
      client.on('error', (err) => errors.push(err));
      const disconnects = inbox();
      client.on('disconnect', (err) => disconnects.push(err));
      try {
        await client.open();
        const twin = await client.getTwin();
        for (let i = 0; i < 3; i++) {
          const res = await updateSas(client, sas(3600 + i));
          assert.equal(res.constructor.name, 'SharedAccessSignatureUpdated');
          assert.equal(res.needToReconnect, false, 'AMQP renews on the same connection');
          await new Promise((ok, fail) => twin.properties.reported.update({ renewed: i }, (err) => (err ? fail(err) : ok())));
        }
        assert.equal(await connectionState(reg, deviceId), 'Connected');
        assert.deepEqual(disconnects.items, [], 'no disconnect while renewing');

        if (Transport !== Amqp) {
          // Node takes 45 s to give up a connection whose renewal was
          // refused (its own rundown timer): once is enough.
          return;
        }
        // The SDK puts a renewed token twice (once for its authentication
        // provider's newTokenAvailable, once for the call) and disconnects
        // at the first refusal: the call fails with the 401
        // (UnauthorizedError) or, when that disconnect overtakes the second
        // answer, with the $cbs link detached under it
        // (ServiceUnavailableError). The disconnect carries the 401.
        const bad = sas(3600, crypto.randomBytes(32).toString('base64'));
        await assert.rejects(updateSas(client, bad), (err) => {
          assert.ok(['UnauthorizedError', 'ServiceUnavailableError'].includes(err.name), `${err.name}: ${err.message}`);
          return true;
        });
        const gone = await disconnects.next('the disconnect after the refused renewal');
        const reason = gone.transportObj || gone.reason;
        assert.equal(reason && reason.name, 'UnauthorizedError', `disconnected with ${reason}`);
        await eventually('the device to be disconnected', async () => (await connectionState(reg, deviceId)) === 'Disconnected');
      } finally {
        await client.close().catch(() => {});
      }
    });
  });

  test(`automatic token renewal over ${name}: short-lived tokens renewed while connected`, { timeout: 60000 }, async () => {
    await withDevice('amqp-autorenew', async (deviceId, key) => {
      const client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      client.setOptions({ tokenRenewal: { tokenValidTimeInSeconds: 6, tokenRenewalMarginInSeconds: 5 } });
      const disconnects = [];
      client.on('disconnect', (err) => disconnects.push(err));
      try {
        await client.open();
        await sleep(4500); // a few renewals, one a second
        await client.sendEvent(new Message('after renewals'));
        const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
        assert.equal(res.body.length, 1);
        assert.deepEqual(disconnects, []);
        assert.deepEqual(client.errors, []);
      } finally {
        await client.close();
      }
    });
  });

  test(`refusals over ${name}: bad credentials, a module with its device's key, oversized telemetry, a disabled device`, { timeout: 60000 }, async () => {
    await withDevice('amqp-refused', async (deviceId, key, reg) => {
      const cases = [
        ['wrong key', deviceConnectionString(deviceId, crypto.randomBytes(32).toString('base64'))],
        ['unknown device', deviceConnectionString(uniqueId('amqp-nosuch'), key)],
      ];
      for (const [what, cs] of cases) {
        const client = deviceClient(cs, Transport);
        await assert.rejects(client.open(), (err) => {
          assert.equal(err.name, 'UnauthorizedError', `${what}: ${err.name}: ${err.message}`);
          return true;
        });
        await client.close().catch(() => {});
      }

      const client = deviceClient(deviceConnectionString(deviceId, key), Transport);
      try {
        await client.open();
        await assert.rejects(client.sendEvent(new Message(Buffer.alloc(256 * 1024 + 1, 'a'))), (err) => {
          assert.equal(err.name, 'MessageTooLargeError', `${err.name}: ${err.message}`);
          return true;
        });
        await client.sendEvent(new Message('still connected'));
        const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
        assert.deepEqual(res.body.map((m) => Buffer.from(m.body, 'base64').toString()), ['still connected']);
      } finally {
        await client.close();
      }

      // A module's connection string signed with its device's key: the
      // token is checked against the module's own keys.
      await reg.addModule({ deviceId, moduleId: 'm1' });
      const borrowed = ModuleClient.fromConnectionString(`${deviceConnectionString(deviceId, key)};ModuleId=m1`, Transport);
      borrowed.setRetryPolicy(noRetry);
      borrowed.on('error', () => {});
      await assert.rejects(borrowed.open(), (err) => {
        assert.equal(err.name, 'UnauthorizedError', `a module with its device's key: ${err.name}: ${err.message}`);
        return true;
      });
      await borrowed.close().catch(() => {});

      // A disabled device is refused at its put-token.
      const { responseBody: current } = await reg.get(deviceId);
      current.status = 'disabled';
      await reg.update(current);
      const disabled = deviceClient(deviceConnectionString(deviceId, key), Transport);
      await assert.rejects(disabled.open(), (err) => err.name === 'UnauthorizedError');
      await disabled.close().catch(() => {});
    });
  });
}

// X.509: the device brings a TLS client certificate and puts no token. The
// harness writes a self-signed certificate for the provisioning tests
// (X509_SELF_CERT); a device registered by its thumbprint uses it here.
const x509Cert = process.env.X509_SELF_CERT;
const x509Key = process.env.X509_SELF_KEY;
for (const { name, Transport, recorded } of amqpTransports) {
  test(`X.509 device over ${name}: no CBS, twin, methods and telemetry`, { timeout: 60000, skip: !x509Cert && 'X509_SELF_CERT is not set' }, async () => {
    const reg = registry();
    const cert = fs.readFileSync(x509Cert, 'utf8');
    const certKey = fs.readFileSync(x509Key, 'utf8');
    const thumbprint = new crypto.X509Certificate(cert).fingerprint.replace(/:/g, '');
    const deviceId = uniqueId('amqp-x509');
    await reg.create({ deviceId, authentication: { x509Thumbprint: { primaryThumbprint: thumbprint } } });
    const client = DeviceClient.fromConnectionString(`HostName=${hostName()};DeviceId=${deviceId};x509=true`, Transport);
    client.setRetryPolicy(noRetry);
    client.setOptions({ cert, key: certKey });
    const errors = [];
    client.on('error', (err) => errors.push(err));
    const service = serviceClient();
    try {
      await client.open();
      const twin = await client.getTwin();
      await new Promise((ok, fail) => twin.properties.reported.update({ auth: 'x509' }, (err) => (err ? fail(err) : ok())));
      client.onDeviceMethod('whoami', (request, response) => response.send(200, { id: deviceId }));
      const result = await invokeWhenListening(service, deviceId, { methodName: 'whoami', responseTimeoutInSeconds: 10 });
      assert.deepEqual(result.payload, { id: deviceId });
      await client.sendEvent(new Message('signed'));
      const res = await control('GET', `/emulator/messages?deviceId=${encodeURIComponent(deviceId)}&wait=10`);
      const got = res.body[res.body.length - 1];
      assert.equal(got.connectionAuthMethod, 'x509');
      assert.equal(got.transport, recorded);
      assert.deepEqual(errors, []);
    } finally {
      await client.close();
      await deleteQuietly(reg, deviceId);
    }
  });
}
