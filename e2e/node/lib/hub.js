// SPDX-License-Identifier: MIT
'use strict';

// Shared set-up for the Node SDK tests. The Go harness (e2e/node_test.go)
// starts the emulator on 127.0.0.1:443, :8883, :5671 and :5672, registers DEVICE_ID and
// runs `node --test` here with these variables set; the official SDKs take no
// port, so the tests cannot run against an emulator on other ports.

const crypto = require('node:crypto');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { Client: ServiceClient, ConnectionString, Registry } = require('azure-iothub');

function requireEnv(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run these tests through the Go harness: go test ./e2e -run TestNodeSDK`);
  }
  return v;
}

const env = {
  serviceConnectionString: requireEnv('IOTHUB_CONNECTION_STRING'),
  deviceConnectionString: requireEnv('IOTHUB_DEVICE_CONNECTION_STRING'),
  deviceId: requireEnv('DEVICE_ID'),
};

// Every device test runs once per transport the Node SDK offers over MQTT.
const transports = [
  { name: 'MQTT', Transport: Mqtt },
  { name: 'MQTT-WS', Transport: MqttWs },
];

// noRetry makes the SDKs report the emulator's first answer instead of
// retrying for minutes and hiding a server bug (the SDKs' default policy
// retries some errors for up to four minutes).
const noRetry = { shouldRetry: () => false, nextRetryTimeout: () => -1 };

function uniqueId(prefix) {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

function hostName() {
  return ConnectionString.parse(env.serviceConnectionString).HostName;
}

function deviceConnectionString(deviceId, key) {
  return `HostName=${hostName()};DeviceId=${deviceId};SharedAccessKey=${key}`;
}

function registry() {
  return Registry.fromConnectionString(env.serviceConnectionString);
}

function serviceClient() {
  const c = ServiceClient.fromConnectionString(env.serviceConnectionString);
  c.setRetryPolicy(noRetry);
  return c;
}

// deviceClient returns a client without retries that records 'error'
// events (an unhandled one would crash the test process).
function deviceClient(connectionString, Transport) {
  const c = DeviceClient.fromConnectionString(connectionString, Transport);
  c.setRetryPolicy(noRetry);
  c.errors = [];
  c.on('error', (err) => c.errors.push(err));
  return c;
}

// createDevice registers a SAS device with hub-generated keys and returns
// the registry's answer.
async function createDevice(reg, deviceId) {
  const { responseBody } = await reg.create({ deviceId });
  return responseBody;
}

async function deleteQuietly(reg, deviceId) {
  try {
    await reg.delete(deviceId);
  } catch {
    // Clean-up only: the assertion that matters already ran.
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// invokeWhenListening invokes a direct method, retrying while the hub says
// the device is not online. The SDK subscribes to methods lazily after
// onDeviceMethod and offers no completion callback, so a first call can
// legitimately race the subscription, against the real hub too.
async function invokeWhenListening(service, deviceId, params, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const { result } = await service.invokeDeviceMethod(deviceId, params);
      return result;
    } catch (err) {
      const notOnline = err.response && err.response.statusCode === 404 && /404103/.test(String(err.responseBody));
      if (!notOnline || Date.now() > deadline) {
        throw err;
      }
      await sleep(200);
    }
  }
}

// withDevice registers a SAS device with a unique id, runs fn with its id,
// primary key and the registry, and deletes it.
async function withDevice(prefix, fn) {
  const reg = registry();
  const deviceId = uniqueId(prefix);
  const device = await createDevice(reg, deviceId);
  try {
    await fn(deviceId, device.authentication.symmetricKey.primaryKey, reg);
  } finally {
    await deleteQuietly(reg, deviceId);
  }
}

// inbox collects what an emitter emits (push) and lets a test wait for the
// next item; items holds what has not been taken.
function inbox() {
  const items = [];
  let wake;
  return {
    items,
    push(x) {
      items.push(x);
      if (wake) {
        wake();
      }
    },
    async next(what, ms = 15000) {
      while (items.length === 0) {
        await withTimeout(new Promise((resolve) => { wake = resolve; }), ms, what);
      }
      return items.shift();
    },
  };
}

module.exports = {
  env,
  transports,
  noRetry,
  uniqueId,
  hostName,
  deviceConnectionString,
  registry,
  serviceClient,
  deviceClient,
  createDevice,
  deleteQuietly,
  withTimeout,
  invokeWhenListening,
  withDevice,
  inbox,
  sleep,
};
