// SPDX-License-Identifier: MIT

// Package provisioning is an Azure IoT Hub Device Provisioning Service
// (DPS) device client: a device registers with an ID scope and its
// registration id, proves who it is with a symmetric key or an X.509
// certificate, and learns which hub it is assigned to and its device id
// there. It works against the real service (global.azure-devices-provisioning.net)
// and against the local emulator, and puts the same bytes on the wire as
// the official SDKs: Python's ProvisioningDeviceClient is the feature model,
// Node's azure-iot-provisioning-device-mqtt and -http the wire reference.
//
// Transports: MQTT over TLS (the default, as in Python), MQTT over
// WebSockets and HTTPS. Register sends the registration, waits as the
// service's retry-after says and polls the operation until it is assigned
// or failed; answers of 429 and above are retried the same way, as the
// official SDKs retry them.
//
// The result plugs into the device package: RegistrationResult.ConnectionString
// for a symmetric-key device, or RegistrationResult.NewDeviceClient, which
// also carries an X.509 device's certificate over.
//
// Quick start:
//
//	c, err := provisioning.NewFromSymmetricKey(provisioning.GlobalEndpoint, idScope, "sensor-1", key)
//	res, err := c.Register(ctx)
//	dc, err := res.NewDeviceClient()
//
// For the local emulator, give its host (with the HTTPS port for HTTPS and
// MQTT over WebSockets, or its MQTT port for MQTT, when they are not 443
// and 8883) and WithCAFile(path to the emulator's CA certificate).
package provisioning
