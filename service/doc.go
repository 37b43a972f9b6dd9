// SPDX-License-Identifier: MIT

// Package service is a Go client for the Azure IoT Hub service API: over
// HTTPS, the identity registry (devices, modules, bulk operations,
// statistics, import/export jobs), device and module twins, direct methods,
// queries, jobs (twin updates and direct methods scheduled on the devices a
// condition selects, ScheduleTwinUpdate and ScheduleDeviceMethod, read
// back with GetJob, QueryJobs and QueryDeviceJobs), automatic device
// management configurations, IoT Plug and Play digital twins, the feedback
// queue (ReceiveFeedback, CompleteFeedback, AbandonFeedback) and the purge
// of a device's cloud-to-device queue (PurgeC2DQueue); over AMQP,
// cloud-to-device messages (SendC2D), their delivery feedback
// (FeedbackReceiver), file-upload notifications (FileNotificationReceiver)
// and telemetry from the hub's Event Hub-compatible endpoint
// (EventHubEndpoint, NewEventReceiver, NewEventReceiverFromConnectionString).
// It speaks the same wire protocols as the official service SDKs
// (api-version 2021-04-12, SAS tokens from a shared access policy; AMQP 1.0
// with claims-based security) and works both against a real hub and
// against this project's emulator; it imports nothing of the emulator.
//
// Quick start:
//
//	c, err := service.NewFromConnectionString(os.Getenv("IOTHUB_CONNECTION_STRING"))
//	defer c.Close() // the AMQP connection, if one was opened
//	d, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
//	if errors.Is(err, service.ErrAlreadyExists) { ... }
//	err = c.SendC2D(ctx, "dev1", &service.C2DMessage{Body: []byte("on"), Ack: service.AckFull})
//	r, err := c.NewEventReceiver(ctx, service.EventReceiverOptions{})
//	ev, err := r.Receive(ctx)
//
// Against the emulator, add WithRootCAs with its CA; the examples run
// against one in process (emulator.New).
//
// AMQP: the client opens one AMQP connection to the hub on the first call
// that needs it, shared by SendC2D and the feedback and file-notification
// receivers, and closed by Close; each EventReceiver has a connection of
// its own to the event hub. A connection authenticates with SASL ANONYMOUS
// and a put-token on $cbs, with a SAS token minted from the policy key and
// put again on the same connection when a quarter of its lifetime is left.
// It runs over TLS on port 5671 of the hub's host, or over WebSockets on
// 443 (WithWebSockets). A HostName with a ":port" (an emulator's HTTPS
// port) uses AMQP over WebSockets on that port, which the hub and the
// emulator serve beside REST; WithAMQPAddr names an AMQP over TLS listener
// on another port instead. A lost connection is reopened as the retry
// policy allows, but a cloud-to-device send is never repeated.
//
// Behaviour worth knowing:
//   - Every call takes a context; cancelling it ends the call, including
//     any wait between retries.
//   - Failed calls return an *Error carrying the HTTP status, the hub's
//     six-digit code and code name, message and tracking id, parsed from
//     either error body form the hub uses; an AMQP refusal carries its
//     condition (Error.Condition) and the status and code of the same
//     refusal on REST. Test it with errors.Is against ErrNotFound,
//     ErrAlreadyExists, ErrPreconditionFailed, ErrThrottled,
//     ErrDeviceNotOnline, ErrTimeout and the other sentinels; the device
//     package's errors have the same shape and sentinel names.
//   - Only calls that are safe to repeat are retried (see RetryPolicy;
//     WithRetryPolicy and WithoutRetries are the device package's options
//     too). Creates, twin patches, bulk operations, direct methods and
//     cloud-to-device sends make one attempt; so does scheduling a job.
//     Pass WithoutRetries in tests.
//   - Twin tags and properties are open JSON documents and are kept as raw
//     JSON (TwinCollection) with map and struct accessors.
//   - The SAS token minted from the policy key is cached and renewed when a
//     quarter of its lifetime remains. A ":port" in HostName is used for the
//     connection only, never in the token's resource.
//
// Emulator-only operations: ReadTelemetry and TelemetryHead (the
// device-to-cloud messages the emulator recorded, filtered, with long
// polling, without consuming anything) and C2DFeedback (every feedback
// record so far) read the emulator's test-control routes under /emulator.
// A real hub has no such views (read telemetry with an EventReceiver and
// feedback with a FeedbackReceiver there), and against it they fail with
// an error wrapping ErrEmulatorOnly. Everything else in the package works
// against both.
package service
