// SPDX-License-Identifier: MIT

package emulator

import (
	"log/slog"
	"os"
	"strings"
)

// Tester is the part of *testing.T that RunT needs; emulator does not
// import testing.
type Tester interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
}

// Option adjusts the Options RunT starts with.
type Option func(*Options)

// WithOptions replaces RunT's options wholesale; addresses left empty still
// get random loopback ports.
func WithOptions(o Options) Option { return func(p *Options) { *p = o } }

// WithDataDir keeps the database in dir (to test restarts).
func WithDataDir(dir string) Option { return func(o *Options) { o.DataDir = dir } }

// WithStorage gives the hub a storage account for file upload, as
// --storage-connection-string does; caFile (may be empty) is a PEM CA that
// storage's certificate chains to, such as Azurite's in tests.
func WithStorage(connectionString, caFile string) Option {
	return func(o *Options) { o.StorageConnectionString, o.StorageCAFile = connectionString, caFile }
}

// WithConfig applies a config (policies, devices) at start.
func WithConfig(c *Config) Option { return func(o *Options) { o.Config = c } }

// RunT starts a fresh, isolated emulator for a test: random loopback ports,
// a temporary data directory, closed by t.Cleanup. It fails the test at
// once if the emulator cannot start. Set IOTHUB_EMULATOR_LOG=debug to see
// its log in the test output.
func RunT(t Tester, opts ...Option) *Server {
	t.Helper()
	o := Options{}
	for _, f := range opts {
		f(&o)
	}
	if o.MQTTAddr == "" {
		o.MQTTAddr = "127.0.0.1:0"
	}
	if o.HTTPSAddr == "" {
		o.HTTPSAddr = "127.0.0.1:0"
	}
	if o.AMQPAddr == "" {
		o.AMQPAddr = "127.0.0.1:0"
	}
	if o.AMQPPlainAddr == "" {
		o.AMQPPlainAddr = "127.0.0.1:0"
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testLogger(t Tester) *slog.Logger {
	lvl := strings.ToLower(os.Getenv("IOTHUB_EMULATOR_LOG"))
	if lvl == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(lvl)); err != nil {
		l = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: l}))
}

type tWriter struct{ t Tester }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
