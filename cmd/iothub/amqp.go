// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Commands that speak AMQP to the hub (c2d send and feedback,
// monitor-events, file-notification receive) take where to reach it, and
// those that receive take how long and what to do with what they got.

// amqpLong is the part of their help that says how they connect.
const amqpLong = `
It speaks AMQP, as the official service SDKs do: over TLS on port 5671 of
the hub's host, or over WebSockets on 443 with --websockets. When the
connection string's HostName carries a port (an emulator's HTTPS port), it
uses AMQP over WebSockets on that port; --amqp-addr names an AMQP over TLS
listener instead.`

// amqpFlags registers --websockets and --amqp-addr.
func (c *cli) amqpFlags(f *pflag.FlagSet) {
	f.BoolVar(&c.amqpWebSockets, "websockets", false, "speak AMQP over WebSockets on port 443 instead of AMQP over TLS on 5671")
	f.StringVar(&c.amqpAddr, "amqp-addr", "", "HOST:PORT of the hub's AMQP over TLS listener, when it is not port 5671 of the hub's host")
}

// receiveFlags bound a receiving command and say how it settles what it
// receives.
type receiveFlags struct {
	count   int
	timeout time.Duration
	settle  string
}

var settleModes = []string{"complete", "abandon", "reject"}

func (r *receiveFlags) register(f *pflag.FlagSet, what string, settles bool) {
	f.IntVar(&r.count, "count", 0, "stop after this many "+what+" (default: no limit)")
	f.DurationVar(&r.timeout, "timeout", 0, "stop after this long (default: run until interrupted)")
	if settles {
		f.StringVar(&r.settle, "settle", "complete", "what to do with each one received: complete (remove it from the queue), abandon (return it) or reject (dead-letter it)")
	}
}

// check validates the flags.
func (r *receiveFlags) check(settles bool) error {
	switch {
	case r.count < 0:
		return usagef("--count must not be negative")
	case r.timeout < 0:
		return usagef("--timeout must not be negative")
	case settles && !slices.Contains(settleModes, r.settle):
		return usagef("--settle must be one of %s", strings.Join(settleModes, ", "))
	}
	return nil
}

// context bounds ctx by --timeout.
func (r *receiveFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.timeout > 0 {
		return context.WithTimeout(ctx, r.timeout)
	}
	return context.WithCancel(ctx)
}

// done reports whether n items reach --count.
func (r *receiveFlags) done(n int) bool { return r.count > 0 && n >= r.count }

// stopped reports whether err is the end a receiving command expects:
// --timeout or Ctrl-C.
func stopped(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil
}

// lineWriter prints one JSON object per line.
type lineWriter struct{ enc *json.Encoder }

func (c *cli) lines() lineWriter {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	return lineWriter{enc}
}

func (w lineWriter) write(v any) error {
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
