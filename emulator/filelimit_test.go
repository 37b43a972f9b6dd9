// SPDX-License-Identifier: MIT

package emulator_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/fleet"
	"github.com/iothubemulator/iothub/service"
)

// childFileLimit is the open-file limit of the emulator process that
// TestFileLimit starts: small, so that a hundred devices reach it.
const childFileLimit = 160

// childInfo is what the child prints once it serves.
type childInfo struct {
	ConnectionString string `json:"cs"`
	MQTTAddr         string `json:"mqtt"`
	HTTPSAddr        string `json:"https"`
	CAFile           string `json:"ca"`
}

// TestFileLimitChild is the emulator process of TestFileLimit, run by it
// with a low RLIMIT_NOFILE; on its own it does nothing. It reads commands
// on stdin: "exhaust" opens files until none can be opened, "release"
// closes them, end of input stops it.
func TestFileLimitChild(t *testing.T) {
	if os.Getenv("IOTHUB_FILELIMIT_CHILD") != "1" {
		t.Skip("the emulator process of TestFileLimit")
	}
	rl := syscall.Rlimit{Cur: childFileLimit, Max: childFileLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		AMQPAddr: emulator.ListenOff, AMQPPlainAddr: emulator.ListenOff,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b, _ := json.Marshal(childInfo{srv.ConnectionString(), srv.MQTTAddr(), srv.HTTPSAddr(), srv.CAFile()})
	fmt.Printf("%s\n", b)
	var held []*os.File
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "exhaust":
			for {
				f, err := os.Open(os.DevNull)
				if err != nil {
					break
				}
				held = append(held, f)
			}
			fmt.Println("exhausted")
		case "release":
			for _, f := range held {
				f.Close()
			}
			held = nil
			fmt.Println("released")
		}
	}
}

// TestFileLimit runs the emulator with an open-file limit of 160 and
// connects more devices than that allows. The devices beyond its capacity
// are refused at once (the server closes the connection, the client does
// not wait out a timeout); HTTPS /health and method calls to the devices
// that are connected still work; the condition is logged once, not once
// per refusal. With every descriptor taken by something else, a new
// connection is still refused at once rather than left in the backlog.
func TestFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process and 150 device connections")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileLimitChild$", "-test.v")
	cmd.Env = append(os.Environ(), "IOTHUB_FILELIMIT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stdin.Close()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdoutPipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the emulator process ended; stderr:\n%s", stderr.String())
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q line from the emulator process within a minute; stderr:\n%s", prefix, stderr.String())
			}
		}
	}
	var info childInfo
	if err := json.Unmarshal([]byte(next("{")), &info); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc, err := service.NewFromConnectionString(info.ConnectionString, service.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	const devices = 150
	creds, err := fleet.CreateDevices(ctx, sc, fleet.DeviceIDs("fd", devices), fleet.AuthSAS, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(fleet.Options{HostName: "localhost", Addr: info.MQTTAddr, TLS: &tls.Config{RootCAs: pool},
		Devices: creds, ConnectParallel: 8, ConnectTimeout: 30 * time.Second, MethodResponse: []byte(`{"ok":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	failed, firstErr := f.Connect(ctx, nil)
	connected := f.Connected()
	t.Logf("%d devices connected, %d refused (%v)", connected, failed, firstErr)
	if connected < 20 || failed < 20 || connected+failed != devices {
		t.Fatalf("got %d connected and %d refused of %d, want both many: the limit is %d descriptors", connected, failed, devices, childFileLimit)
	}

	// A refused connection is closed by the server, not left to time out.
	refusedAtOnce(t, info.MQTTAddr, pool)

	// HTTPS and the connected devices are still served.
	health := func() {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
		defer hc.CloseIdleConnections()
		res, err := hc.Get("https://" + info.HTTPSAddr + "/health")
		if err != nil {
			t.Fatalf("GET /health at the limit: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /health at the limit: %s", res.Status)
		}
	}
	health()
	var some string
	for _, d := range f.Devices() {
		if d.Connected() {
			some = d.ID()
		}
	}
	res, err := sc.InvokeMethod(ctx, some, service.MethodCall{Name: "ping", ResponseTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("method call to %s at the limit: %v", some, err)
	}
	if res.Status != 200 || string(res.Payload) != `{"ok":true}` {
		t.Fatalf("method call to %s at the limit: got %d %s", some, res.Status, res.Payload)
	}

	// With no descriptor left at all, a new connection is still refused
	// at once, and the process serves again once descriptors are free.
	fmt.Fprintln(stdin, "exhaust")
	next("exhausted")
	refusedAtOnce(t, info.MQTTAddr, pool)
	fmt.Fprintln(stdin, "release")
	next("released")
	health()

	f.Close()
	stop()
	logged := strings.Count(stderr.String(), "refusing new connections")
	if logged != 1 {
		t.Errorf("the refusals were logged %d times, want once per 30 s:\n%s", logged, stderr.String())
	}
}

// refusedAtOnce checks that a TLS connection to addr fails because the
// server closed it, not because the handshake timed out.
func refusedAtOnce(t *testing.T, addr string, pool *x509.CertPool) {
	t.Helper()
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err == nil {
		// The handshake may complete in the kernel's buffers before the
		// server closed: the first read then tells.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	var ne net.Error
	switch {
	case err == nil:
		t.Fatal("a connection beyond the limit was served")
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("a connection beyond the limit was left waiting: %v", err)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "reset by peer"):
		t.Fatalf("a connection beyond the limit failed with %v, want the server's close", err)
	}
}

// lockedBuffer is a bytes.Buffer that a process writes while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
