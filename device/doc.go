// SPDX-License-Identifier: MIT

// Package device is an Azure IoT Hub device and module client over MQTT
// 3.1.1 (TLS or WebSockets). It works against the real hub and against the
// local emulator, and puts the same bytes on the wire as the official SDKs:
// Python's azure-iot-device is the feature model (IoTHubDeviceClient,
// IoTHubModuleClient), Node's azure-iot-device-mqtt the wire reference.
//
// Features: telemetry with system and application properties (SendMessage),
// cloud-to-device messages (OnMessage, ReceiveMessage), direct methods
// (HandleMethod, SetDefaultMethodHandler, ReceiveMethodRequest,
// SendMethodResponse), twins (GetTwin, UpdateReportedProperties,
// OnDesiredPropertiesUpdate, ReceiveDesiredPatch), and file upload over
// HTTPS whatever the transport (UploadToBlob, or GetStorageInfoForBlob and
// NotifyBlobUploadStatus; WithHTTPSHost when the hub's HTTPS port is not
// 443). Authentication is by
// shared access key (tokens are generated and renewed by reconnecting
// before they expire), ready-made SAS token, or X.509 certificate.
// Subscriptions are made lazily, when a feature is first used, and are
// restored after every reconnect; the client reconnects by itself after a
// drop, with exponential backoff and jitter.
//
// Behaviour worth knowing:
//   - Failures the hub reports (a refused CONNECT, a twin reply with an
//     error status) are an *Error with the status, the hub's code, code
//     name, message and tracking id; test them with errors.Is against
//     ErrUnauthorized, ErrThrottled, ErrBadRequest and the other
//     sentinels. The service package's errors have the same shape and
//     sentinel names.
//   - Connect makes one attempt; later drops are retried per RetryPolicy
//     (WithRetryPolicy; WithoutRetries turns reconnection off).
//     A reconnect refused for credentials (ErrUnauthorized: device deleted
//     or disabled, key changed, given SAS token expired) ends the retries
//     with the default policy: the client reports StateDisconnected with
//     that error, and operations fail with ErrNotConnected wrapping it.
//     A client built from a SAS token learns of its coming expiry through
//     OnNewSASTokenRequired.
//   - Telemetry is at-least-once: a message whose PUBACK is lost to a drop
//     is sent again after the reconnect. Twin requests are re-sent the same
//     way; method responses are not (the hub has already failed the call).
//   - Cloud-to-device messages are acknowledged on receipt; MQTT offers no
//     reject or abandon.
//   - Desired-property patches are not queued by the hub while the device is
//     offline; after a reconnect read the twin with GetTwin.
//   - Handlers run on client goroutines, one at a time per feature, except
//     method handlers, which run concurrently.
//   - What arrives while no handler is set waits for a Receive call (the
//     hub keeps subscriptions between connections, so messages can arrive
//     right after Connect). A handler set later is handed what is still
//     waiting, oldest first; while set, it takes everything of its kind and
//     Receive calls for that kind wait.
//
// Quick start:
//
//	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
//	err = c.Connect(ctx); defer c.Close()
//	err = c.SendMessage(ctx, &device.Message{Body: []byte(`{"t":21.5}`), ContentType: "application/json", ContentEncoding: "utf-8"})
//
// For the local emulator, whose host name carries a port, add
// WithCAFile(path to the emulator's CA certificate).
package device
