// SPDX-License-Identifier: MIT

package restapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// TestCancelledLongPollIsNotAnError cancels a client's long-poll of
// /emulator/messages (what monitor-events does at its --timeout) and
// expects no ERROR line, only a debug note.
func TestCancelledLongPollIsNotAnError(t *testing.T) {
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	h, err := hub.New(db, hub.Config{
		HostName: testHost,
		Policies: hub.DefaultPolicies(ownerKey),
		// A frozen clock: the long-poll never ends by itself.
		Clock:  clock.FromFunc(func() time.Time { return testNow }),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	api := New(Options{Hub: h})
	entered := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		api.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		db.Close()
	})
	e := &env{t: t, hub: h, srv: srv, client: srv.Client()}

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/emulator/messages?wait=60", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", e.token(hub.OwnerPolicy))
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
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
