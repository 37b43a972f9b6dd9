// SPDX-License-Identifier: MIT

package restapi

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// loggedEnv serves the REST API of a hub whose log, at debug level, the
// test reads, through wrap, which sees each request before the API does.
// The hub's clock is frozen: a long-poll never ends by itself.
func loggedEnv(t *testing.T, wrap func(api http.Handler) http.Handler) (*env, *lockedBuffer) {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	logs := new(lockedBuffer)
	h, err := hub.New(db, hub.Config{
		HostName: testHost,
		Policies: hub.DefaultPolicies(ownerKey),
		Clock:    clock.FromFunc(func() time.Time { return testNow }),
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(wrap(New(Options{Hub: h})))
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		db.Close()
	})
	return &env{t: t, hub: h, srv: srv, client: srv.Client()}, logs
}

// TestCancelledLongPollIsNotAnError cancels a client's long-poll of
// /emulator/messages (what monitor-events does at its --timeout) and
// expects no ERROR line, only a debug note.
func TestCancelledLongPollIsNotAnError(t *testing.T) {
	entered := make(chan struct{}, 1)
	e, logs := loggedEnv(t, func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case entered <- struct{}{}:
			default:
			}
			api.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/emulator/messages?wait=60", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", e.token(hub.OwnerPolicy))
	done := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered // the handler has the request; cancelling now is the client's doing
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the long-poll answered; want it still waiting when cancelled")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "request cancelled by the client") {
		if time.Now().After(deadline) {
			t.Fatalf("no debug note within 5s; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a cancelled long-poll was logged as an error:\n%s", logs.String())
	}
}

// brokenWriter is a response whose connection broke: every body write
// fails as a write to a closed socket does.
type brokenWriter struct {
	http.ResponseWriter
	writes *atomic.Int32
}

func (b brokenWriter) Write([]byte) (int, error) {
	b.writes.Add(1)
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
}

// TestLostResponseIsNotAnError breaks the connection under a response the
// handler has begun: the hub did nothing wrong, so no ERROR line, and no
// error body is written after the lost one.
func TestLostResponseIsNotAnError(t *testing.T) {
	var writes atomic.Int32
	e, logs := loggedEnv(t, func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				w = brokenWriter{ResponseWriter: w, writes: &writes}
			}
			api.ServeHTTP(w, r)
		})
	})
	if res := e.do(request{method: "PUT", path: "/devices/lost", auth: e.token(hub.OwnerPolicy), body: `{"deviceId":"lost"}`}); res.status != http.StatusOK {
		t.Fatalf("create: %d %s", res.status, res.body)
	}

	e.do(request{method: "GET", path: "/devices/lost", auth: e.token(hub.OwnerPolicy)})
	if n := writes.Load(); n != 1 {
		t.Errorf("%d body writes, want the one that broke and no error body after it", n)
	}
	if !strings.Contains(logs.String(), "response not delivered") {
		t.Errorf("no debug note of the lost response; log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a lost response was logged as an error:\n%s", logs.String())
	}
}
