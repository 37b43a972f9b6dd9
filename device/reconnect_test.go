// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
	"github.com/iothubemulator/iothub/internal/sas"
)

// allFeatures registers every feature so the client needs all four
// subscriptions.
func allFeatures(c *device.Client) {
	c.HandleMethod("ping", func(context.Context, *device.MethodRequest) (int, any) { return 200, "pong" })
	c.OnMessage(func(*device.Message) {})
	c.OnDesiredPropertiesUpdate(func(device.Properties, int64) {})
}

var allFilters = map[string]byte{
	"$iothub/methods/POST/#":                  0,
	"devices/dev1/messages/devicebound/#":     1,
	"$iothub/twin/PATCH/properties/desired/#": 0,
	"$iothub/twin/res/#":                      0,
}

// TestReconnectResubscribes drops the connection and checks that the new
// connection subscribes to everything the application registered, in the
// SDKs' QoS, and that methods work again.
func TestReconnectResubscribes(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	allFeatures(c)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allFilters, h.Subscriptions("dev1")); diff != "" {
		t.Errorf("first connection's subscriptions mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i <= 2; i++ {
		if err := h.Drop("dev1"); err != nil {
			t.Fatal(err)
		}
		h.WaitConnects(t, i+1)
		for f := range allFilters {
			h.WaitSubscribed(t, "dev1", f)
		}
		if diff := cmp.Diff(allFilters, h.Subscriptions("dev1")); diff != "" {
			t.Errorf("after drop %d, subscriptions mismatch (-want +got):\n%s", i, diff)
		}
		if res := h.InvokeMethod(t, "ping", nil); res.Status != 200 || string(res.Payload) != `"pong"` {
			t.Errorf("after drop %d, ping = %d %s, want 200 \"pong\"", i, res.Status, res.Payload)
		}
	}
	if got := c.State(); got != device.StateConnected {
		t.Errorf("State() = %v, want %v", got, device.StateConnected)
	}
}

// TestReconnectGivesUp checks that when the retry policy stops, the client
// reports StateDisconnected and operations fail with ErrNotConnected, and
// that Connect can start over.
func TestReconnectGivesUp(t *testing.T) {
	h := fakehub.Start(t)
	c := connected(t, h, device.WithRetryPolicy(device.ExponentialBackoff{Initial: time.Millisecond, Max: time.Millisecond, MaxFailures: 2}))
	disconnected := make(chan error, 1)
	c.OnConnectionStateChange(func(s device.ConnectionState, err error) {
		if s == device.StateDisconnected {
			disconnected <- err
		}
	})
	h.SetServerUnavailable(true)
	if err := h.Drop("dev1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-disconnected:
		var he *device.Error
		if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("disconnect reason = %v, want a *device.Error with status 503 (CONNACK 3)", err)
		}
	case <-time.After(fakehub.WaitTimeout):
		t.Fatal("client did not give up")
	}
	if n := len(h.Connects()); n != 3 {
		t.Errorf("CONNECT attempts = %d, want 3 (first, then 1 immediate + 1 retry before giving up)", n)
	}
	if _, err := c.GetTwin(testContext(t)); !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("GetTwin after giving up = %v, want ErrNotConnected", err)
	}
	h.SetServerUnavailable(false)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect after giving up: %v", err)
	}
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Errorf("GetTwin after reconnecting: %v", err)
	}
}

// TestReconnectStopsWhenUnauthorized checks that a refused reconnect
// (CONNACK 4: the device was disabled or deleted, or its token expired)
// ends the retries at once even with a policy that retries forever, as the
// Node SDK's error filter does: the client reports StateDisconnected with
// the refusal, and both the operation that was waiting for the reconnect
// and later ones fail with it.
func TestReconnectStopsWhenUnauthorized(t *testing.T) {
	h := fakehub.Start(t)
	forever := device.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}
	c := connected(t, h, device.WithRetryPolicy(forever), device.WithOperationTimeout(fakehub.WaitTimeout))
	disconnected := make(chan error, 1)
	c.OnConnectionStateChange(func(s device.ConnectionState, err error) {
		if s == device.StateDisconnected {
			disconnected <- err
		}
	})
	h.SetAuth(func(fakehub.Connect) bool { return false })
	// The hub drops the connection instead of acknowledging: the send is
	// pending across the refused reconnect.
	h.DropOnPublish("devices/dev1/messages/events/")
	err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x")})
	if !errors.Is(err, device.ErrNotConnected) || !errors.Is(err, device.ErrUnauthorized) {
		t.Errorf("pending SendMessage = %v, want ErrNotConnected wrapping ErrUnauthorized", err)
	}
	select {
	case err := <-disconnected:
		if !errors.Is(err, device.ErrUnauthorized) {
			t.Errorf("disconnect reason = %v, want ErrUnauthorized", err)
		}
	case <-time.After(fakehub.WaitTimeout):
		t.Fatal("client did not report StateDisconnected")
	}
	if n := len(h.Connects()); n != 2 {
		t.Errorf("CONNECT attempts = %d, want 2 (first, then 1 refused reconnect)", n)
	}
	if got := c.State(); got != device.StateDisconnected {
		t.Errorf("State() = %v, want %v", got, device.StateDisconnected)
	}
	if _, err := c.GetTwin(testContext(t)); !errors.Is(err, device.ErrUnauthorized) {
		t.Errorf("GetTwin afterwards = %v, want ErrUnauthorized", err)
	}
}

// TestNewSASTokenRequired checks that a client given a SAS token asks the
// application for a new one the renew margin before it expires, once per
// token (not again after a reconnect with the same token), and reconnects
// with the token it is then given.
func TestNewSASTokenRequired(t *testing.T) {
	h := fakehub.Start(t)
	tok := func(d time.Duration) string {
		s, err := sas.NewToken(sas.ResourceURI(testHost, "dev1", ""), "", testKey, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const margin = 2 * time.Second
	first, second := tok(4*time.Second), tok(time.Hour)
	c, err := device.NewFromSASToken(h.TLSAddr, "dev1", "", first, device.WithRootCAs(h.CA.Pool),
		device.WithRetryPolicy(fastRetry), device.WithTokenRenewMargin(margin))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var asked atomic.Int32
	askedAt := make(chan time.Time, 1)
	c.OnNewSASTokenRequired(func() {
		if asked.Add(1) == 1 {
			askedAt <- time.Now()
		}
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	expiry := mustToken(t, first).Expiry
	select {
	case at := <-askedAt:
		if at.Before(expiry.Add(-margin)) || !at.Before(expiry) {
			t.Errorf("asked at %v, want within the margin %v before expiry %v", at, margin, expiry)
		}
	case <-time.After(fakehub.WaitTimeout):
		t.Fatal("the client did not ask for a new token")
	}

	// A drop before the application answers: the client reconnects with
	// the same token and does not ask again.
	if err := h.Drop("dev1"); err != nil {
		t.Fatal(err)
	}
	h.WaitConnects(t, 2)
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateSASToken(second); err != nil {
		t.Fatal(err)
	}
	got := h.WaitConnects(t, 3)
	if got[1].Password != first || got[2].Password != second {
		t.Errorf("passwords after the first = %q, %q, want the same token then the new one", got[1].Password, got[2].Password)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("asked for a new token %d times, want 1", n)
	}
}

// TestTokenRenewal uses a 3 s token renewed 1 s before expiry and checks
// that the client reconnects with a fresh token before the old one expires
// and restores its subscriptions.
func TestTokenRenewal(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr), device.WithTokenLifetime(3*time.Second), device.WithTokenRenewMargin(time.Second))
	allFeatures(c)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Fatal(err)
	}
	connects := h.WaitConnects(t, 2)
	first, second := mustToken(t, connects[0].Password), mustToken(t, connects[1].Password)
	if now := time.Now(); !now.Before(first.Expiry) {
		t.Errorf("renewed at %v, not before the first token expired at %v", now, first.Expiry)
	}
	if !second.Expiry.After(first.Expiry) {
		t.Errorf("renewed token expires %v, want after %v", second.Expiry, first.Expiry)
	}
	for f := range allFilters {
		h.WaitSubscribed(t, "dev1", f)
	}
	// The next renewal is at least a second away: the client answers.
	if res := h.InvokeMethod(t, "ping", nil); res.Status != 200 {
		t.Errorf("ping after renewal = %d, want 200", res.Status)
	}
}

func mustToken(t *testing.T, s string) sas.Token {
	t.Helper()
	tok, err := sas.ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", s, err)
	}
	return tok
}

// TestUpdateSASToken checks that a new caller-supplied token is used at
// once, by reconnecting.
func TestUpdateSASToken(t *testing.T) {
	h := fakehub.Start(t)
	tok := func(d time.Duration) string {
		s, err := sas.NewToken(sas.ResourceURI(testHost, "dev1", ""), "", testKey, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first, second := tok(time.Hour), tok(2*time.Hour)
	// A SAS-token client has no gateway: the hub's port rides in the host.
	c, err := device.NewFromSASToken(h.TLSAddr, "dev1", "", first, device.WithRootCAs(h.CA.Pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateSASToken(second); err != nil {
		t.Fatal(err)
	}
	got := h.WaitConnects(t, 2)
	if got[0].Password != first || got[1].Password != second {
		t.Errorf("passwords = %q, %q, want the first then the updated token", got[0].Password, got[1].Password)
	}
	if err := c.UpdateSASToken("garbage"); err == nil {
		t.Error("UpdateSASToken(garbage) = nil, want an error")
	}
}

// TestCloseLeaksNothing checks that Close stops every goroutine the client
// started, with all features busy and a method handler blocked until its
// context is cancelled.
func TestCloseLeaksNothing(t *testing.T) {
	h := fakehub.Start(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newClient(t, h, deviceString(h.TLSAddr))
	allFeatures(c)
	entered := make(chan struct{})
	c.HandleMethod("block", func(ctx context.Context, _ *device.MethodRequest) (int, any) {
		close(entered)
		<-ctx.Done()
		return 500, nil
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	h.WaitSubscribed(t, "dev1", "$iothub/methods/POST/#")
	invokeCtx, stopInvoke := context.WithCancel(context.Background())
	invoked := make(chan struct{})
	go func() {
		defer close(invoked)
		_, _ = h.Invoke(invokeCtx, "block", nil) // never answered: the client closes first
	}()
	<-entered
	pending := make(chan error, 1)
	go func() {
		_, err := c.ReceiveDesiredPatch(context.Background())
		pending <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; !errors.Is(err, device.ErrClosed) {
		t.Errorf("pending ReceiveDesiredPatch = %v, want ErrClosed", err)
	}
	h.WaitDisconnects(t, 1)
	stopInvoke()
	<-invoked
}
