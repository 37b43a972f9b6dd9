// SPDX-License-Identifier: MIT

// Package service is a Go client for the Azure IoT Hub service REST API:
// the identity registry (devices, modules, bulk operations, statistics,
// import/export jobs), device and module twins, direct methods, queries,
// jobs (twin updates and direct methods scheduled on the devices a
// condition selects, ScheduleTwinUpdate and ScheduleDeviceMethod, read
// back with GetJob, QueryJobs and QueryDeviceJobs), automatic device
// management configurations and IoT Plug and Play digital twins. It speaks the same
// wire protocol as the official service SDKs (api-version 2021-04-12, SAS
// tokens from a shared access policy) and works both against a real hub and
// against this project's emulator; it imports nothing of the emulator.
//
// Quick start:
//
//	c, err := service.NewFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"))
//	d, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
//	if errors.Is(err, service.ErrAlreadyExists) { ... }
//
// Against the emulator, add WithRootCAs with its CA; the examples run
// against one in process (emulator.New).
//
// Behaviour worth knowing:
//   - Every call takes a context; cancelling it ends the call, including
//     any wait between retries.
//   - Failed calls return an *Error carrying the HTTP status, the hub's
//     six-digit code and code name, message and tracking id, parsed from
//     either error body form the hub uses. Test it with errors.Is against
//     ErrNotFound, ErrAlreadyExists, ErrPreconditionFailed, ErrThrottled,
//     ErrDeviceNotOnline, ErrTimeout and the other sentinels; the device
//     package's errors have the same shape and sentinel names.
//   - Only calls that are safe to repeat are retried (see RetryPolicy;
//     WithRetryPolicy and WithoutRetries are the device package's options
//     too). Creates, twin patches, bulk operations and direct methods make
//     one attempt; so does scheduling a job. Pass WithoutRetries in tests.
//   - Twin tags and properties are open JSON documents and are kept as raw
//     JSON (TwinCollection) with map and struct accessors.
//   - The SAS token minted from the policy key is cached and renewed when a
//     quarter of its lifetime remains. A ":port" in HostName is used for the
//     connection only, never in the token's resource.
//
// Emulator-only operations: SendC2D (queue a cloud-to-device message),
// C2DFeedback (delivery feedback), ReadTelemetry (the device-to-cloud
// messages the hub recorded, with long polling) and, for now,
// FileNotificationReceiver (file-upload notifications) call the emulator's
// test-control routes under /emulator. A real hub offers these only over
// AMQP (cloud-to-device send and feedback, and the Event Hub-compatible
// endpoint for telemetry), which this package does not speak; against a
// real hub they fail with an error wrapping ErrEmulatorOnly. Everything
// else in the package works against both.
package service
