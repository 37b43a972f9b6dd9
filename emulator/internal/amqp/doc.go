// SPDX-License-Identifier: MIT

// Package amqp is an AMQP 1.0 server engine (OASIS AMQP 1.0): protocol
// headers, SASL, connections, sessions, links, flow control and
// settlement. It knows nothing of IoT Hub; the adapter (amqpapi) decides
// what each link means. The type codec is in the codec sub-package and
// re-exported here where the API needs it (Symbol, UUID, Described, ...).
//
// # Supported
//
//   - Protocol headers "AMQP 3 1 0 0" (SASL, then "AMQP 0 1 0 0") and a
//     bare "AMQP 0 1 0 0" (rhea without a username skips SASL). Config.RequireSASL
//     refuses the bare header.
//   - SASL ANONYMOUS, PLAIN (split into authzid, authcid, password), EXTERNAL
//     (with the TLS state) and MSSBCBS, as offered by Config.SASLMechanisms
//     and decided by Config.Authenticate.
//   - Every performative, delivery state and message section, multi-frame
//     transfers both ways (split at the peer's max-frame-size, reassembled up
//     to max-message-size), aborted deliveries, both settle modes in both
//     roles, drain and echo, heartbeats inside the peer's idle-time-out, our
//     own idle-time-out enforced, a deadline before open, a write deadline
//     that drops a peer that stops reading.
//   - Limits: frame size, sessions (channel-max), links per session
//     (handle-max) and per connection, message size, decoder depth and
//     container sizes. Exceeding one gets amqp:resource-limit-exceeded (or
//     the spec's framing, decode, handle and credit errors).
//   - A debug-level frame trace on Config.Logger, like PN_TRACE_FRM.
//
// # Refused
//
// "AMQP 2 1 0 0" (TLS inside AMQP: use TLS on the socket) gets our header
// and a close of the socket. Transactions (a coordinator target) and link
// recovery (an attach with an unsettled map) are refused with
// amqp:not-implemented. We never begin sessions or attach links ourselves:
// the engine serves what peers open.
//
// # Quick start
//
//	cfg := &amqp.Config{
//		SASLMechanisms: []amqp.Symbol{amqp.SASLAnonymous, amqp.SASLPlain},
//		OnAttach: func(l *amqp.Link, reply *amqp.AttachReply) error {
//			if l.Address() != "/messages/devicebound" {
//				return amqp.Errorf(amqp.ErrNotFound, "no node %q", l.Address())
//			}
//			go func() { // the peer sends: receive, commit, settle
//				for {
//					d, err := l.Receive(ctx)
//					if err != nil {
//						return // the link ended; l.Err() says why
//					}
//					go func() { commit(d.Message); d.Accept() }()
//				}
//			}()
//			return nil
//		},
//	}
//	go amqp.Serve(ctx, listener, cfg) // or amqp.ServeConn(ctx, conn, cfg) per net.Conn
//
// On a link where the peer receives (l.Role() == RoleSender), the
// application calls l.Send, which waits for credit, and watches the
// returned *Outgoing for the peer's outcome.
//
// # Concurrency
//
// All state of a connection is guarded by one mutex; frames are written by
// one writer goroutine per connection, so no application call blocks on a
// slow peer's socket (Send waits for credit and for the write queue to
// drain below Config.MaxWriteQueue, both bounded by its context).
// Config.OnAttach and Config.OnOpen run on the connection's reader
// goroutine: they must not wait for traffic on the same connection.
package amqp
