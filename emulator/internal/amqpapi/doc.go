// SPDX-License-Identifier: MIT

// Package amqpapi maps IoT Hub's AMQP 1.0 surface onto the hub core: the
// $cbs node, the device and module links (telemetry, C2D, direct methods,
// twins), the service nodes (C2D send, delivery feedback, file-upload
// notifications), the Event Hub-compatible endpoint that backends read
// telemetry from, and the /messages/events redirect to it. The AMQP
// protocol itself lives in package amqp, which knows nothing of IoT Hub;
// this package only parses addresses, authenticates, and maps hub results
// and errors onto AMQP outcomes, as mqttapi and restapi do for theirs.
//
// # Listeners
//
// Server serves AMQP over TLS (Options.Addr, the hub's 5671), plain AMQP
// (Options.PlainAddr, for Event Hubs clients with UseDevelopmentEmulator)
// and, through WebSocketHandler, AMQP over WebSockets (subprotocol
// AMQPWSB10) on the HTTPS server's /$iothub/websocket and
// /$servicebus/websocket. Each connection gets its own engine Config whose
// callbacks are bound to a conn (conn.go): its claims, the links they
// authorize, its reply links.
//
// # Authorization: claims
//
// A connection is authorized piece by piece (claims.go): SASL PLAIN
// ({policy}@sas.root.{hub} or {deviceId}@sas.{hub}, a SAS token as the
// password), each put-token on $cbs (cbs.go), and a device's TLS client
// certificate, checked when a link for that device needs it, each add a
// Claim: a policy's (Policy, Rights, Scope: the path its token covers) or
// a device's or module's (Identity, Method "sas" or "x509"). A put-token
// for the same subject renews the claim in place. An attach handler calls
//
//	cl, err := c.authorize(l, Need{Rights: hub.ServiceConnect, Resource: "messages/devicebound"})
//	cl, err := c.authorize(l, Need{Device: &hub.Identity{DeviceID: id, ModuleID: mid}})
//
// which binds l to a live claim that grants it (a device need is granted by
// the device's own claim, its certificate, or a DeviceConnect policy's
// token the hub accepts for it) or returns amqp:unauthorized-access to
// refuse the attach with. When a claim lapses (token expiry plus the hub's
// clock skew, on the hub's clock), each bound link moves to another claim
// that grants it or is detached with amqp:unauthorized-access; the
// connection stays up for a new put-token. A link handler therefore only
// watches its link (Link.Done) to learn that its authorization ended.
//
// # Nodes
//
// nodes.go is the one table of addresses: $cbs, /messages/devicebound
// (c2d.go), /messages/serviceBound/feedback and .../filenotifications
// (queue.go), /messages/events (redirect.go), {hub}/$management and
// {hub}/ConsumerGroups/{group}/Partitions/{n} (eventhub.go, readers.go for
// epochs), and the device and module links under /devices/{id}/...
// (device_links.go: telemetry, C2D, methods, twin, module inputs), each
// identity on a connection one hub session (device.go). Anything else is
// amqp:not-found; Service Bus features (dynamic nodes, sessions) and
// management operations other than READ are refused as not implemented.
// Request nodes answer on the reply link that reply-to names (rpc.go).
package amqpapi
