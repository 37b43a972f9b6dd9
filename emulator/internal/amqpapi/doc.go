// SPDX-License-Identifier: MIT

// Package amqpapi maps IoT Hub's AMQP 1.0 surface onto the hub core: the
// $cbs node, the service nodes (C2D send, delivery feedback, file-upload
// notifications), the Event Hub-compatible endpoint that backends read
// telemetry from, and the device and module links. The AMQP protocol
// itself lives in package amqp, which knows nothing of IoT Hub; this
// package only parses addresses, authenticates, and maps hub results and
// errors onto AMQP outcomes, as mqttapi and restapi do for their
// transports.
package amqpapi
