// SPDX-License-Identifier: MIT
'use strict';

// Automatic device management through the official Node service SDK
// (Registry addConfiguration, getConfiguration, getConfigurations,
// updateConfiguration, removeConfiguration, applyConfigurationContentOnDevice),
// with a device and an IoT Edge agent module connected through the Node
// device SDK that receive what the configurations set.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { IoTHubTokenCredentials } = require('azure-iothub');
const { IotHubGatewayServiceAPIs } = require('azure-iothub/dist/pl/iotHubGatewayServiceAPIs');
const { ModuleClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const {
  env, transports, uniqueId, registry, deviceClient, createDevice, deleteQuietly, deviceConnectionString, withTimeout, noRetry,
} = require('../lib/hub');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// waitFor polls until check returns a truthy value.
async function waitFor(check, what, ms = 15000) {
  return withTimeout((async () => {
    for (;;) {
      const v = await check();
      if (v) {
        return v;
      }
      await sleep(50);
    }
  })(), ms, what);
}

async function removeQuietly(reg, configId) {
  try {
    await reg.removeConfiguration(configId);
  } catch {
    // Clean-up only.
  }
}

for (const { name, Transport } of transports) {
  test(`a configuration's desired properties reach a targeted device and leave with it over ${name}`, { timeout: 90000 }, async () => {
    const reg = registry();
    const deviceId = uniqueId('node-adm');
    const configId = uniqueId('node-cfg');
    const device = await createDevice(reg, deviceId);
    const client = deviceClient(deviceConnectionString(deviceId, device.authentication.symmetricKey.primaryKey), Transport);
    try {
      await client.open();
      const twin = await client.getTwin();
      const deltas = [];
      twin.on('properties.desired', (delta) => deltas.push(delta));
      await twin.get(); // the desired subscription is in place after this answer

      const metricQuery = "SELECT deviceId FROM devices WHERE properties.reported.chillerWaterSettings.status='pending'";
      const { responseBody: added } = await reg.addConfiguration({
        id: configId,
        content: { deviceContent: { 'properties.desired.chiller-water': { temperature: 66, pressure: 28 } } },
        labels: { site: 'B7' },
        metrics: { queries: { waterSettingsPending: metricQuery } },
        targetCondition: `tags.site='B7' AND deviceId='${deviceId}'`,
        priority: 20,
      });
      assert.equal(added.id, configId);
      assert.equal(added.schemaVersion, '1.0', 'the SDK fills in schemaVersion');
      assert.equal(added.priority, 20);
      assert.equal(added.etag, 'MQ==');
      assert.deepEqual(added.labels, { site: 'B7' });
      assert.deepEqual(added.content, {
        deviceContent: { 'properties.desired.chiller-water': { temperature: 66, pressure: 28 } },
        modulesContent: {},
        moduleContent: {},
      });
      assert.deepEqual(added.systemMetrics, {
        results: { targetedCount: 0, appliedCount: 0 },
        queries: {
          targetedCount: `select deviceId from devices where tags.site='B7' AND deviceId='${deviceId}'`,
          appliedCount: `select deviceId from devices where configurations.[[${configId}]].status = 'Applied'`,
        },
      });
      assert.deepEqual(added.metrics, { results: { waterSettingsPending: 0 }, queries: { waterSettingsPending: metricQuery } });
      assert.ok(!Number.isNaN(Date.parse(added.createdTimeUtc)), 'createdTimeUtc');
      assert.equal(twin.properties.desired['chiller-water'], undefined, 'not targeted before the tag');

      // The tag brings the device into scope.
      await reg.updateTwin(deviceId, { tags: { site: 'B7' } }, '*');
      const delta = await waitFor(() => deltas.find((d) => d['chiller-water']), 'the configuration to reach the device');
      assert.deepEqual(delta['chiller-water'], { temperature: 66, pressure: 28 });
      assert.deepEqual(twin.properties.desired['chiller-water'], { temperature: 66, pressure: 28 });

      // The device acts on it; the metrics count it.
      await new Promise((ok, fail) => twin.properties.reported.update({ chillerWaterSettings: { status: 'pending' } }, (err) => (err ? fail(err) : ok())));
      const { responseBody: got } = await reg.getConfiguration(configId);
      assert.deepEqual(got.systemMetrics.results, { targetedCount: 1, appliedCount: 1 });
      assert.deepEqual(got.metrics.results, { waterSettingsPending: 1 });
      const { responseBody: serviceTwin } = await reg.getTwin(deviceId);
      assert.deepEqual(serviceTwin.configurations, { [configId]: { status: 'Applied' } });
      const { result: rows } = await reg.createQuery(`SELECT deviceId FROM devices WHERE configurations.[[${configId}]].status = 'Applied'`).next();
      assert.deepEqual(rows, [{ deviceId }]);

      const { responseBody: all } = await reg.getConfigurations();
      assert.ok(all.some((c) => c.id === configId), 'getConfigurations lists it');

      // Updates: with the etag, then a stale etag, then forced.
      got.priority = 21;
      const { responseBody: updated } = await reg.updateConfiguration(got);
      assert.equal(updated.priority, 21);
      assert.equal(updated.etag, 'Mg==');
      await assert.rejects(reg.updateConfiguration({ ...got, etag: 'MQ==', priority: 22 }), (err) => err.name === 'InvalidEtagError');
      const { responseBody: forced } = await reg.updateConfiguration({ ...got, etag: 'MQ==', priority: 23 }, true);
      assert.equal(forced.priority, 23);
      await assert.rejects(reg.updateConfiguration({ ...updated, content: { deviceContent: { 'properties.desired.other': 1 } } }, true),
        (err) => err.name === 'ArgumentError', 'content is fixed at creation');

      // Removing the configuration removes its settings from the device.
      deltas.length = 0;
      await reg.removeConfiguration(configId);
      const removal = await waitFor(() => deltas.find((d) => 'chiller-water' in d), 'the removal to reach the device');
      assert.equal(removal['chiller-water'], null);
      assert.equal(twin.properties.desired['chiller-water'], undefined);
      await assert.rejects(reg.getConfiguration(configId), (err) => err.name === 'DeviceNotFoundError');
      await assert.rejects(reg.removeConfiguration(configId), (err) => err.name === 'DeviceNotFoundError');
      assert.deepEqual(client.errors, []);
    } finally {
      await client.close();
      await removeQuietly(reg, configId);
      await deleteQuietly(reg, deviceId);
    }
  });
}

test('configurations: priority wins a shared path, and bad requests are refused', { timeout: 60000 }, async () => {
  const reg = registry();
  const deviceId = uniqueId('node-adm-prio');
  const low = uniqueId('node-cfg-low');
  const high = uniqueId('node-cfg-high');
  await createDevice(reg, deviceId);
  try {
    const target = `deviceId='${deviceId}'`;
    await reg.addConfiguration({ id: low, targetCondition: target, priority: 1,
      content: { deviceContent: { 'properties.desired.fw': { version: '1.0' }, 'properties.desired.lowOnly': true } } });
    await reg.addConfiguration({ id: high, targetCondition: target, priority: 5,
      content: { deviceContent: { 'properties.desired.fw': { version: '2.0' } } } });
    const { responseBody: twin } = await reg.getTwin(deviceId);
    assert.deepEqual(twin.properties.desired.fw, { version: '2.0' });
    assert.equal(twin.properties.desired.lowOnly, true);
    assert.deepEqual(twin.configurations, { [low]: { status: 'Applied' }, [high]: { status: 'Applied' } });

    await reg.removeConfiguration(high);
    const { responseBody: after } = await reg.getTwin(deviceId);
    assert.deepEqual(after.properties.desired.fw, { version: '1.0' }, 'the next priority takes over');

    await assert.rejects(reg.addConfiguration({ id: low, targetCondition: target }), (err) => err.name === 'DeviceAlreadyExistsError');
    await assert.rejects(reg.addConfiguration({ id: 'Upper-Case', targetCondition: target }), (err) => err.name === 'ArgumentError');
    await assert.rejects(reg.addConfiguration({ id: uniqueId('node-cfg-bad'), targetCondition: 'tags.x = = 1' }), (err) => err.name === 'ArgumentError');
    await assert.rejects(reg.addConfiguration({ id: uniqueId('node-cfg-bad'), content: { deviceContent: { 'tags.x': 1 } } }), (err) => err.name === 'ArgumentError');

    // testQueries has no Registry method; the generated protocol layer calls it.
    const creds = new IoTHubTokenCredentials(env.serviceConnectionString);
    const pl = new IotHubGatewayServiceAPIs(creds, { baseUri: 'https://' + creds.getHubName(), apiVersion: '2021-04-12' });
    const res = await pl.configuration.testQueries({ targetCondition: "tags.site = 'B7'",
      customMetricQueries: { ok: 'SELECT deviceId FROM devices', bad: 'SELECT deviceId FROM' } });
    assert.equal(res.targetConditionError, '');
    assert.deepEqual(Object.keys(res.customMetricQueryErrors), ['bad']);
  } finally {
    await removeQuietly(reg, high);
    await removeQuietly(reg, low);
    await deleteQuietly(reg, deviceId);
  }
});

test('applyConfigurationContentOnDevice sets the edge agent module twin that the module reads', { timeout: 60000 }, async () => {
  const reg = registry();
  const edgeId = uniqueId('node-edge-apply');
  const leafId = uniqueId('node-leaf-apply');
  await reg.create({ deviceId: edgeId, capabilities: { iotEdge: true } });
  await createDevice(reg, leafId);
  let agent;
  try {
    const modules = { tempSensor: { type: 'docker', status: 'running', settings: { image: 'example/temp:1.0' } } };
    const content = {
      modulesContent: {
        $edgeAgent: { 'properties.desired': { schemaVersion: '1.1', runtime: { type: 'docker' }, modules } },
        $edgeHub: { 'properties.desired': { schemaVersion: '1.1', routes: { upstream: 'FROM /messages/* INTO $upstream' } } },
      },
    };
    await assert.rejects(reg.applyConfigurationContentOnDevice(leafId, content), (err) => err.name === 'ArgumentError',
      'a device that is not an edge device');
    await assert.rejects(reg.applyConfigurationContentOnDevice(edgeId, { deviceContent: { 'properties.desired.x': 1 } }),
      (err) => err.name === 'ArgumentError', 'modulesContent is required');
    const { httpResponse } = await reg.applyConfigurationContentOnDevice(edgeId, content);
    assert.equal(httpResponse.statusCode, 204);

    const { responseBody: agentTwin } = await reg.getModuleTwin(edgeId, '$edgeAgent');
    assert.deepEqual(agentTwin.properties.desired.modules, modules);
    const { responseBody: agentModule } = await reg.getModule(edgeId, '$edgeAgent');
    const cs = `${deviceConnectionString(edgeId, agentModule.authentication.symmetricKey.primaryKey)};ModuleId=$edgeAgent`;
    agent = ModuleClient.fromConnectionString(cs, Mqtt);
    agent.setRetryPolicy(noRetry);
    await agent.open();
    const twin = await agent.getTwin();
    assert.deepEqual(twin.properties.desired.modules, modules, 'the module reads its deployment');
    assert.equal(twin.properties.desired.runtime.type, 'docker');
  } finally {
    if (agent) {
      await agent.close();
    }
    await deleteQuietly(reg, leafId);
    await deleteQuietly(reg, edgeId);
  }
});
