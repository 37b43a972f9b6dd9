// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/service"
)

// Bounds on waiting for the process; generous because CI machines are
// small and shared. They detect hangs, they do not measure speed.
const (
	readyTimeout = 30 * time.Second
	exitTimeout  = 20 * time.Second
)

// procConfig is how to start one emulator process.
type procConfig struct {
	dataDir   string   // --data-dir; required
	httpsAddr string   // --https-addr; default 127.0.0.1:0
	mqttAddr  string   // --mqtt-addr; default 127.0.0.1:0
	amqpAddr  string   // --amqp-addr; default 127.0.0.1:0
	amqpPlain string   // --amqp-plain-addr; default 127.0.0.1:0
	extraArgs []string // appended last, so they win over the defaults
}

func (c procConfig) args() []string {
	orDefault := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	level := orDefault(os.Getenv("IOTHUB_E2E_LOG_LEVEL"), "info")
	args := []string{
		"--hostname", "localhost",
		"--https-addr", orDefault(c.httpsAddr, "127.0.0.1:0"),
		"--mqtt-addr", orDefault(c.mqttAddr, "127.0.0.1:0"),
		"--amqp-addr", orDefault(c.amqpAddr, "127.0.0.1:0"),
		"--amqp-plain-addr", orDefault(c.amqpPlain, "127.0.0.1:0"),
		"--data-dir", c.dataDir,
		"--log-level", level,
	}
	return append(args, c.extraArgs...)
}

// emulatorProc is one running (or exited) emulator process.
type emulatorProc struct {
	cmd    *exec.Cmd
	stdout *lineWriter
	stderr *lineWriter
	exited chan struct{} // closed once the process has been waited for
	err    error         // from cmd.Wait, valid after exited is closed

	// Parsed from stdout once the emulator said it is ready.
	mqttAddr, httpsAddr, caFile, connString string
	// The provisioning service's, from the same banner.
	provisioningHost, idScope, provisioningConnString string
	amqpAddr, amqpPlainAddr                           string
	// The Event Hub-compatible endpoint's connection strings: TLS, and
	// UseDevelopmentEmulator over plain AMQP.
	eventHubConnString, eventHubDevConnString string
}

// launch starts the binary with cfg's flags and an environment without
// IOTHUB_* variables, so the developer's settings cannot leak in. The
// process is killed at cleanup if still running, and its output is logged
// when the test failed.
func launch(tb testing.TB, cfg procConfig) *emulatorProc {
	tb.Helper()
	bin := emulatorBinary(tb)
	p := &emulatorProc{
		cmd:    exec.Command(bin, cfg.args()...),
		stdout: newLineWriter(),
		stderr: newLineWriter(),
		exited: make(chan struct{}),
	}
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	p.cmd.Env = hermeticEnv()
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if tb.Failed() {
			tb.Logf("emulator %v\n%s", p.cmd.Args[1:], p.output())
		}
	})
	return p
}

func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IOTHUB_") {
			env = append(env, kv)
		}
	}
	return env
}

// startEmulator launches an emulator and waits until it is ready.
func startEmulator(tb testing.TB, cfg procConfig) *emulatorProc {
	tb.Helper()
	p := launch(tb, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := p.waitReady(ctx); err != nil {
		tb.Fatalf("emulator did not become ready: %v\n%s", err, p.output())
	}
	return p
}

// waitReady waits for the start-up banner on stdout, then for /health to
// answer 200.
func (p *emulatorProc) waitReady(ctx context.Context) error {
	for !p.parseBanner() {
		select {
		case <-p.stdout.changed:
		case <-p.exited:
			if !p.parseBanner() { // all output is in once the process has been waited for
				return fmt.Errorf("process exited (%v) before it was ready", p.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("no start-up banner on stdout: %w", ctx.Err())
		}
	}
	hc, err := p.httpClient()
	if err != nil {
		return err
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.httpsAddr+"/health", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET /health: %v", err)
		case <-p.exited:
			return fmt.Errorf("process exited (%v) before /health answered 200", p.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// parseBanner reads the ready banner that cmd/iothub-emulator prints:
//
//	IoT Hub emulator ready in 12ms
//	  MQTT (TLS):         127.0.0.1:40123
//	  HTTPS + MQTT/WSS:   127.0.0.1:40124
//	  AMQP (TLS):         127.0.0.1:40125
//	  AMQP (plain):       127.0.0.1:40126
//	  CA certificate:     /data/ca.pem
//	  provisioning host:  localhost:40124 (ID scope 0ne00000E11)
//	  service connection string (iothubowner):
//	    HostName=localhost:40124;SharedAccessKeyName=iothubowner;SharedAccessKey=...
//	  provisioning service connection string (provisioningserviceowner):
//	    HostName=localhost:40124;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=...
func (p *emulatorProc) parseBanner() bool {
	lines := p.stdout.lines()
	ready := false
	for i, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "IoT Hub emulator ready"):
			ready = true
		case strings.HasPrefix(l, "MQTT (TLS):"):
			p.mqttAddr = strings.TrimSpace(strings.TrimPrefix(l, "MQTT (TLS):"))
		case strings.HasPrefix(l, "HTTPS + MQTT/WSS:"):
			p.httpsAddr = strings.TrimSpace(strings.TrimPrefix(l, "HTTPS + MQTT/WSS:"))
		case strings.HasPrefix(l, "AMQP (TLS):"):
			p.amqpAddr = strings.TrimSpace(strings.TrimPrefix(l, "AMQP (TLS):"))
		case strings.HasPrefix(l, "AMQP (plain):"):
			p.amqpPlainAddr = strings.TrimSpace(strings.TrimPrefix(l, "AMQP (plain):"))
		case strings.HasPrefix(l, "CA certificate:"):
			p.caFile = strings.TrimSpace(strings.TrimPrefix(l, "CA certificate:"))
		case strings.HasPrefix(l, "service connection string") && i+1 < len(lines):
			p.connString = strings.TrimSpace(lines[i+1])
		case strings.HasPrefix(l, "provisioning host:"):
			host, scope, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "provisioning host:")), " (ID scope ")
			p.provisioningHost, p.idScope = host, strings.TrimSuffix(scope, ")")
		case strings.HasPrefix(l, "provisioning service connection string") && i+1 < len(lines):
			p.provisioningConnString = strings.TrimSpace(lines[i+1])
		case strings.HasPrefix(l, "Event Hub-compatible endpoint (Event Hubs SDKs, TLS)") && i+1 < len(lines):
			p.eventHubConnString = strings.TrimSpace(lines[i+1])
		case strings.HasPrefix(l, "Event Hub-compatible endpoint (UseDevelopmentEmulator") && i+1 < len(lines):
			p.eventHubDevConnString = strings.TrimSpace(lines[i+1])
		}
	}
	return ready && p.mqttAddr != "" && p.httpsAddr != "" && p.caFile != "" && p.connString != "" && p.provisioningConnString != ""
}

// caPool is a pool trusting the emulator's CA.
func (p *emulatorProc) caPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(p.caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate", p.caFile)
	}
	return pool, nil
}

func (p *emulatorProc) httpClient() (*http.Client, error) {
	pool, err := p.caPool()
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		},
	}, nil
}

// serviceClient is our Go service client for the iothubowner policy,
// trusting the emulator's CA, without retries so errors surface.
func (p *emulatorProc) serviceClient(tb testing.TB) *service.Client {
	tb.Helper()
	pool, err := p.caPool()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := service.NewFromConnectionString(p.connString, service.WithRootCAs(pool), service.WithoutRetries())
	if err != nil {
		tb.Fatalf("service client for %q: %v", p.connString, err)
	}
	return c
}

// stop sends SIGTERM and requires a clean exit with status 0.
func (p *emulatorProc) stop(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM: %v", err)
	}
	code, err := p.wait(exitTimeout)
	if err != nil {
		tb.Fatalf("after SIGTERM: %v\n%s", err, p.output())
	}
	if code != 0 {
		tb.Fatalf("got exit status %d after SIGTERM, want 0\n%s", code, p.output())
	}
}

// kill sends SIGKILL, which the process cannot catch: nothing is flushed
// or closed on its behalf.
func (p *emulatorProc) kill(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatalf("SIGKILL: %v", err)
	}
	if _, err := p.wait(exitTimeout); err != nil {
		tb.Fatalf("after SIGKILL: %v", err)
	}
}

// wait waits up to d for the process to exit and returns its exit status
// (-1 when a signal ended it). After d it kills the process and fails.
func (p *emulatorProc) wait(d time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.exited
		return 0, fmt.Errorf("process still running after %v; killed it", d)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0, nil
	case errors.As(p.err, &ee):
		return ee.ExitCode(), nil
	default:
		return 0, p.err
	}
}

// output is everything the process wrote, for failure messages.
func (p *emulatorProc) output() string {
	return "--- stdout:\n" + p.stdout.String() + "--- stderr:\n" + p.stderr.String()
}

// lineWriter collects a process's output and signals each write.
type lineWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineWriter() *lineWriter { return &lineWriter{changed: make(chan struct{}, 1)} }

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(b)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default: // a wake-up is already pending
	}
	return len(b), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// lines returns the complete lines written so far.
func (w *lineWriter) lines() []string {
	s := w.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}
