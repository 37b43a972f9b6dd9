// SPDX-License-Identifier: MIT

// Package mqttapi is the emulator's MQTT adapter: Azure IoT Hub's device
// protocol (MQTT 3.1.1 over TLS on 8883 and over WebSockets at
// /$iothub/websocket) on top of an embedded mochi-mqtt broker. It parses
// CONNECT and topics, authenticates through the hub, maps hub errors to
// the wire and writes packets; every rule of IoT Hub itself lives in the
// hub package. References like §3.5 point into iothub-protocol.md.
//
// The broker is used as a packet engine, not as a broker: one hook of ours
// handles authentication, ACLs and every PUBLISH, and nothing a device
// publishes is routed to another device. What the hub sends to a device
// (method requests, twin responses, desired-property notifications,
// cloud-to-device messages) is written to that device's connection only,
// because every device subscribes the same $iothub filters. For the same
// reason two SDK spellings of the §3.5 filters are served:
// azure-sdk-for-c's devices/+/messages/devicebound/# (its messages still
// go out on devices/{deviceId}/messages/devicebound/...) and the C#
// ModuleClient's devices/{id}/modules/{mid}/#, taken as its inputs
// subscription.
//
// Cloud-to-device messages go out at QoS 1 and are completed by the
// device's PUBACK (§3.7). The hub alone redelivers a message that was not
// acknowledged when its connection ended, with DeliveryCount+1; mochi's
// own resend of a CleanSession=0 session's inflight packets is disabled
// for them (see c2d.go).
//
// How the emulator may differ from the hub: the hub's reaction to a sixth
// subscription, to a filter outside §3.5, to a publish over 256 KB and to a
// will topic other than the device's telemetry topic is undocumented; the
// emulator closes the connection (or, for the will, refuses CONNECT with
// code 5). So is its patience with a device that stops reading: the
// emulator closes a connection when a write to it has not completed in
// 10 s, and forwards the device's will, as after a network failure. Every
// $iothub subscription of a CleanSession=0 session is kept across
// connections. A cloud-to-device topic always carries $.exp (the
// queue's absolute expiry), where the hub leaves it out for messages sent
// without an expiry of their own.
//
// Quick start:
//
//	s, err := mqttapi.New(mqttapi.Options{Hub: h, Addr: ":8883", TLSConfig: cfg})
//	err = s.Start() // and mount s.WebSocketHandler() at /$iothub/websocket
package mqttapi
