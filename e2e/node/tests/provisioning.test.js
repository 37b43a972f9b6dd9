// SPDX-License-Identifier: MIT
'use strict';

// The Device Provisioning Service through the official Node packages:
// azure-iot-provisioning-service creates enrollments; devices register with
// azure-iot-provisioning-device over MQTT, MQTT over WebSockets and HTTP,
// attesting with symmetric keys (individual, and derived from a group key)
// and X.509 certificates (individual, and chaining to a group's CA); then
// each provisioned device connects with azure-iot-device and runs the
// device-management tutorial's flow: the back end calls rebootDevice, the
// device answers and reports rebootTime, the back end reads it.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvMqtt, MqttWs: ProvMqttWs } = require('azure-iot-provisioning-device-mqtt');
const { Http: ProvHttp } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { Mqtt } = require('azure-iot-device-mqtt');
const { uniqueId, registry, serviceClient, deviceClient, withTimeout, invokeWhenListening, deleteQuietly } = require('../lib/hub');

// Over MQTT the service accepts the CONNECT whatever the credentials and
// answers the register request with 401 on the response topic, which the
// SDK maps to UnauthorizedError like HTTP's 401.
//
// Against a hub without a provisioning service (TestExternalHub on a real
// hub) the harness sets none of these, and the tests are skipped.
const provisioningHost = process.env.PROVISIONING_HOST;
const idScope = process.env.ID_SCOPE;
const dpsConnectionString = process.env.DPS_CONNECTION_STRING;
const skip = provisioningHost && idScope && dpsConnectionString ? false : 'PROVISIONING_HOST, ID_SCOPE and DPS_CONNECTION_STRING are not set';

const transports = [
  { name: 'MQTT', Transport: ProvMqtt },
  { name: 'MQTT-WS', Transport: ProvMqttWs },
  { name: 'HTTP', Transport: ProvHttp },
];

function dps() {
  return ProvisioningServiceClient.fromConnectionString(dpsConnectionString);
}

function readPem(name) {
  return fs.readFileSync(process.env[name], 'utf8');
}

// The key a device of a symmetric-key group derives from the group key.
function deriveKey(groupKey, registrationId) {
  return crypto.createHmac('SHA256', Buffer.from(groupKey, 'base64')).update(registrationId, 'utf8').digest('base64');
}

async function register(Transport, security) {
  const client = ProvisioningDeviceClient.create(provisioningHost, idScope, new Transport(), security);
  return withTimeout(client.register(), 30000, 'the registration');
}

// tutorialFlow connects the provisioned device to its hub and runs the
// device-management tutorial: rebootDevice, then reported rebootTime.
async function tutorialFlow(result, auth) {
  assert.equal(result.status, 'assigned');
  const cs = `HostName=${result.assignedHub};DeviceId=${result.deviceId};` + (auth.key ? `SharedAccessKey=${auth.key}` : 'x509=true');
  const client = deviceClient(cs, Mqtt);
  if (auth.cert) {
    client.setOptions({ cert: auth.cert, key: auth.certKey });
  }
  const service = serviceClient();
  try {
    await client.open();
    const rebooted = new Promise((resolve, reject) => {
      client.onDeviceMethod('rebootDevice', (request, response) => {
        (async () => {
          await response.send(200, 'Reboot started');
          const twin = await client.getTwin();
          const rebootTime = new Date().toISOString();
          await new Promise((ok, fail) => twin.properties.reported.update({ rebootTime }, (err) => (err ? fail(err) : ok())));
          return rebootTime;
        })().then(resolve, reject);
      });
    });
    const res = await invokeWhenListening(service, result.deviceId, { methodName: 'rebootDevice', payload: null, responseTimeoutInSeconds: 30 });
    assert.equal(res.status, 200);
    assert.equal(res.payload, 'Reboot started');
    const rebootTime = await withTimeout(rebooted, 30000, 'the device to report rebootTime');
    const { responseBody: twin } = await registry().getTwin(result.deviceId);
    assert.equal(twin.properties.reported.rebootTime, rebootTime);
    assert.deepEqual(client.errors, []);
  } finally {
    await client.close();
  }
}

test('individual symmetric-key enrollment, every transport', { skip, timeout: 120000 }, async () => {
  for (const { name, Transport } of transports) {
    const registrationId = uniqueId(`node-sym-${name.toLowerCase()}`);
    const { responseBody: enrollment } = await dps().createOrUpdateIndividualEnrollment({
      registrationId,
      attestation: { type: 'symmetricKey' },
      capabilities: { iotEdge: false },
      initialTwin: { tags: { site: 'lab' }, properties: { desired: { interval: 30 } } },
    });
    const key = enrollment.attestation.symmetricKey.primaryKey;
    assert.ok(key, 'the service generated the keys');
    try {
      const result = await register(Transport, new SymmetricKeySecurityClient(registrationId, key));
      assert.equal(result.deviceId, registrationId, name);
      assert.equal(result.assignedHub, provisioningHost.split(':')[0], name);
      assert.equal(result.substatus, 'initialAssignment', name);
      const { responseBody: twin } = await registry().getTwin(registrationId);
      assert.equal(twin.tags.site, 'lab');
      assert.equal(twin.properties.desired.interval, 30);
      await tutorialFlow(result, { key });
      const { responseBody: state } = await dps().getDeviceRegistrationState(registrationId);
      assert.equal(state.status, 'assigned');
      assert.equal(state.deviceId, registrationId);
    } finally {
      await dps().deleteIndividualEnrollment(registrationId).catch(() => {});
      await deleteQuietly(registry(), registrationId);
    }
  }
});

test('symmetric-key enrollment group with derived keys, every transport', { skip, timeout: 120000 }, async () => {
  const enrollmentGroupId = uniqueId('node-grp');
  const { responseBody: group } = await dps().createOrUpdateEnrollmentGroup({ enrollmentGroupId, attestation: { type: 'symmetricKey' } });
  const ids = [];
  try {
    for (const { name, Transport } of transports) {
      const registrationId = uniqueId(`node-member-${name.toLowerCase()}`);
      ids.push(registrationId);
      const key = deriveKey(group.attestation.symmetricKey.primaryKey, registrationId);
      const result = await register(Transport, new SymmetricKeySecurityClient(registrationId, key));
      assert.equal(result.deviceId, registrationId, name);
      await tutorialFlow(result, { key });
    }
    const query = dps().createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, enrollmentGroupId);
    const { responseBody: states } = await query.next();
    assert.deepEqual(states.map((s) => s.registrationId).sort(), [...ids].sort());
  } finally {
    await dps().deleteEnrollmentGroup(enrollmentGroupId).catch(() => {});
    for (const id of ids) {
      await dps().deleteDeviceRegistrationState(id).catch(() => {});
      await deleteQuietly(registry(), id);
    }
  }
});

test('individual X.509 enrollment, every transport', { skip, timeout: 120000 }, async () => {
  const registrationId = 'node-x509-self';
  const cert = readPem('X509_SELF_CERT');
  const certKey = readPem('X509_SELF_KEY');
  await dps().createOrUpdateIndividualEnrollment({
    registrationId,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: cert } } } },
  });
  try {
    const { responseBody: got } = await dps().getIndividualEnrollment(registrationId);
    const info = got.attestation.x509.clientCertificates.primary.info;
    assert.ok(info && info.sha1Thumbprint && info.subjectName.includes('node-x509-self'), 'certificate info');
    for (const { name, Transport } of transports) {
      const result = await register(Transport, new X509Security(registrationId, { cert, key: certKey }));
      assert.equal(result.deviceId, registrationId, name);
      await tutorialFlow(result, { cert, certKey });
    }
  } finally {
    await dps().deleteIndividualEnrollment(registrationId).catch(() => {});
    await deleteQuietly(registry(), registrationId);
  }
});

test('X.509 enrollment group: a certificate chaining to the group CA, every transport', { skip, timeout: 120000 }, async () => {
  const enrollmentGroupId = uniqueId('node-ca-grp');
  const registrationId = 'node-x509-member';
  const cert = readPem('X509_GROUP_CERT');
  const certKey = readPem('X509_GROUP_KEY');
  await dps().createOrUpdateEnrollmentGroup({
    enrollmentGroupId,
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: readPem('X509_CA_CERT') } } } },
  });
  try {
    for (const { name, Transport } of transports) {
      const result = await register(Transport, new X509Security(registrationId, { cert, key: certKey }));
      assert.equal(result.deviceId, registrationId, name);
      await tutorialFlow(result, { cert, certKey });
    }
  } finally {
    await dps().deleteEnrollmentGroup(enrollmentGroupId).catch(() => {});
    await dps().deleteDeviceRegistrationState(registrationId).catch(() => {});
    await deleteQuietly(registry(), registrationId);
  }
});

test('refused registrations leave the registry untouched, every transport', { skip, timeout: 120000 }, async () => {
  const registrationId = uniqueId('node-refused');
  const disabledId = uniqueId('node-disabled');
  const { responseBody: e } = await dps().createOrUpdateIndividualEnrollment({ registrationId, attestation: { type: 'symmetricKey' } });
  const { responseBody: off } = await dps().createOrUpdateIndividualEnrollment({
    registrationId: disabledId, attestation: { type: 'symmetricKey' }, provisioningStatus: 'disabled',
  });
  try {
    for (const { name, Transport } of transports) {
      const cases = [
        ['wrong key', registrationId, off.attestation.symmetricKey.primaryKey, idScope],
        ['unknown ID scope', registrationId, e.attestation.symmetricKey.primaryKey, '0neFFFFFFFF'],
        ['unknown registration id', uniqueId('node-ghost'), e.attestation.symmetricKey.primaryKey, idScope],
        ['disabled enrollment', disabledId, off.attestation.symmetricKey.primaryKey, idScope],
      ];
      for (const [what, id, key, scope] of cases) {
        const client = ProvisioningDeviceClient.create(provisioningHost, scope, new Transport(), new SymmetricKeySecurityClient(id, key));
        await assert.rejects(withTimeout(client.register(), 30000, what), (err) => {
          assert.equal(err.name, 'UnauthorizedError', `${name} ${what}: ${err}`);
          if (name === 'HTTP') {
            assert.equal(err.response.statusCode, 401);
            assert.equal(JSON.parse(err.responseBody).errorCode, 401002);
          } else {
            assert.equal(err.result.errorCode, 401002, `${name} ${what}: the response topic's body`);
          }
          return true;
        });
      }
    }
    for (const id of [registrationId, disabledId]) {
      await assert.rejects(registry().get(id), { name: 'DeviceNotFoundError' }, `${id} was created`);
      await assert.rejects(dps().getDeviceRegistrationState(id), (err) => err.response.statusCode === 404);
    }
  } finally {
    await dps().deleteIndividualEnrollment(registrationId).catch(() => {});
    await dps().deleteIndividualEnrollment(disabledId).catch(() => {});
  }
});

test('the provisioning service client: enrollment CRUD, query, attestation mechanism', { skip, timeout: 60000 }, async () => {
  const registrationId = uniqueId('node-crud');
  const { responseBody: created } = await dps().createOrUpdateIndividualEnrollment({ registrationId, attestation: { type: 'symmetricKey' } });
  assert.equal(created.provisioningStatus, 'enabled');
  assert.ok(created.etag);
  created.provisioningStatus = 'disabled';
  const { responseBody: updated } = await dps().createOrUpdateIndividualEnrollment(created);
  assert.equal(updated.provisioningStatus, 'disabled');
  assert.notEqual(updated.etag, created.etag);
  await assert.rejects(dps().createOrUpdateIndividualEnrollment(created), (err) => err.response.statusCode === 412, 'stale etag');
  const { responseBody: mechanism } = await dps().getIndividualEnrollmentAttestationMechanism(registrationId);
  assert.equal(mechanism.symmetricKey.primaryKey, created.attestation.symmetricKey.primaryKey);
  const query = dps().createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 100);
  const seen = [];
  while (query.hasMoreResults) {
    const { responseBody: page } = await query.next();
    seen.push(...page.map((x) => x.registrationId));
  }
  assert.ok(seen.includes(registrationId), 'the query returns the enrollment');
  await dps().deleteIndividualEnrollment(updated);
  await assert.rejects(dps().getIndividualEnrollment(registrationId), (err) => err.response.statusCode === 404);
});
