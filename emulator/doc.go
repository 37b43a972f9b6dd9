// SPDX-License-Identifier: MIT

// Package emulator is a local Azure IoT Hub: the device registry, twins,
// direct methods, jobs and telemetry, served over MQTT (TLS and WebSockets),
// HTTPS and AMQP (TLS, plain for UseDevelopmentEmulator clients, and
// WebSockets: devices and modules, cloud-to-device sends, feedback,
// file-upload notifications and the Event Hub-compatible endpoint, see
// EventHubConnectionString) on the
// hub's own topics, routes and nodes, so that the official SDKs and
// this module's device and service packages work against it with only the
// connection string and a CA certificate changed. The same server is a
// Device Provisioning Service on the same host and ports (IDScope,
// ProvisioningHost, ProvisioningConnectionString, PutEnrollment): devices
// provision themselves with the official provisioning SDKs or this
// module's provisioning package, and are assigned to the emulated hub.
//
// In a Go test:
//
//	srv := emulator.RunT(t)                     // random ports, temp data, closed by t.Cleanup
//	devConn, _ := srv.CreateDevice("dev1")      // device connection string
//	svcConn := srv.ConnectionString()           // iothubowner service connection string
//
// Clients must trust the emulator's CA: srv.CAPool(), srv.TLSConfig() or
// the PEM file at srv.CAFile().
//
// How it may differ from the real hub: results of queries are strongly
// consistent (the hub is eventually consistent); nothing is throttled unless
// a test injects it (FailNext, AddReactor, SetThrottle); the hub's own
// fault-injection hook (telemetry carrying AzIoTHub_FaultOperationType) is
// served to every device, and InjectFault does the same without a message;
// connection state is kept in memory (every device is
// Disconnected after a restart; last activity is saved when a connection
// ends); jobs run on the emulator's clock (FastForward to a job's start
// time runs it) and resume after a restart; nothing is routed to module
// inputs. The README's support table lists every feature.
package emulator
