// SPDX-License-Identifier: MIT

// Package wire holds the details of IoT Hub's protocol that the device and
// service clients share, so that each is written once: how identifiers are
// escaped in URL paths, topics and query values, how the hub's error
// answers (both REST body forms, the iothub-errorcode header and MQTT twin
// replies) are read and classified, the api-version and user agent the
// clients send, the backoff they wait between attempts, which connection
// failures a repeat cannot mend, and the advice a certificate failure
// carries.
//
// It is internal: the clients' exported types (device.Error, service.Error,
// the sentinels, RetryPolicy) wrap what is here. It imports nothing of the
// emulator, because the clients must work against the real hub.
package wire
