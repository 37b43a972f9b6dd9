// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"log/slog"
)

// quietHandler logs mochi's records at debug level (errors stay errors).
// mochi reports every connection we drop on purpose as a warning, and
// attaching hooks and listeners as information; the adapter logs what
// matters to an emulator user itself.
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelError {
		l = slog.LevelDebug
	}
	return q.h.Enabled(ctx, l)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		r.Level = slog.LevelDebug
	}
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler { return quietHandler{q.h.WithAttrs(as)} }
func (q quietHandler) WithGroup(name string) slog.Handler    { return quietHandler{q.h.WithGroup(name)} }
