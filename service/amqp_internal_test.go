// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestC2DAMQPMessage checks the message SendC2D puts on the wire, decoded
// again from its encoding: the properties the official SDKs set, with the
// AMQP types they use.
func TestC2DAMQPMessage(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	const uuidID = "6f1e7d36-3bd1-4c3b-9a5e-0c3b2f1d9e4a"
	msg, err := c2dAMQP("dev+1#x", &C2DMessage{
		Body: []byte{0x00, 0xff}, MessageID: uuidID, CorrelationID: "c1", UserID: "u1", Ack: AckFull,
		ContentType: "application/json", ContentEncoding: "utf-8", TTL: 90 * time.Minute,
		Properties: map[string]string{"alert": "high", "empty": "", "a b": "é ü"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got amqp.Message
	if err := got.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	wantUUID := amqp.UUID{0x6f, 0x1e, 0x7d, 0x36, 0x3b, 0xd1, 0x4c, 0x3b, 0x9a, 0x5e, 0x0c, 0x3b, 0x2f, 0x1d, 0x9e, 0x4a}
	if p.MessageID != wantUUID {
		t.Errorf("message-id %#v (%T), want the uuid %s as Node sends it", p.MessageID, p.MessageID, uuidID)
	}
	if p.CorrelationID != "c1" || string(p.UserID) != "u1" || *p.To != "/devices/dev%2B1%23x/messages/devicebound" ||
		*p.ContentType != "application/json" || *p.ContentEncoding != "utf-8" || !p.AbsoluteExpiryTime.Equal(now.Add(90*time.Minute)) {
		t.Errorf("properties %+v, to %q", p, *p.To)
	}
	wantApp := map[string]any{"iothub-ack": "full", "alert": "high", "empty": "", "a b": "é ü"}
	if diff := cmp.Diff(wantApp, got.ApplicationProperties); diff != "" {
		t.Errorf("application properties (-want +got):\n%s", diff)
	}
	if len(got.Data) != 1 || string(got.Data[0]) != "\x00\xff" {
		t.Errorf("body %q, want one data section with the payload", got.Data)
	}

	// Unset fields are left out; an empty body is an empty data section.
	msg, err = c2dAMQP("dev1", &C2DMessage{MessageID: "6F1E7D36-3BD1-4C3B-9A5E-0C3B2F1D9E4A"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if msg.ApplicationProperties != nil || msg.Properties.AbsoluteExpiryTime != nil || msg.Properties.CorrelationID != nil ||
		msg.Properties.UserID != nil || msg.Properties.ContentType != nil || len(msg.Data) != 1 || len(msg.Data[0]) != 0 {
		t.Errorf("minimal message %+v %+v", msg, msg.Properties)
	}
	if msg.Properties.MessageID != "6F1E7D36-3BD1-4C3B-9A5E-0C3B2F1D9E4A" {
		t.Errorf("an upper-case UUID id became %#v; Node sends only lower-case ones as uuid", msg.Properties.MessageID)
	}
	if _, err := c2dAMQP("dev1", &C2DMessage{TTL: -1}, now); err == nil {
		t.Error("a negative TTL was accepted")
	}
}

// newRenewalClient returns a client of srv whose clock the test moves.
func newRenewalClient(t *testing.T, srv *emulator.Server) (*Client, *atomic.Int64) {
	t.Helper()
	c, err := NewFromConnectionString(srv.ConnectionString(), WithRootCAs(srv.CAPool()), WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var offset atomic.Int64
	c.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	return c, &offset
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAMQPTokenRenewal checks that the client puts a new token on the same
// connection when a quarter of the old one's lifetime is left, so that its
// links outlive the first token; a client that does not renew loses its
// link when the hub's clock passes its token's expiry.
func TestAMQPTokenRenewal(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	renewing, clock := newRenewalClient(t, srv)
	stale, _ := newRenewalClient(t, srv)
	for _, c := range []*Client{renewing, stale} {
		if err := c.SendC2D(ctx, "dev1", &C2DMessage{}); err != nil {
			t.Fatalf("SendC2D: %v", err)
		}
	}
	conn, sender := renewing.hub, renewing.c2d
	aud := renewing.hubAudience()
	token := func() *putToken {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.tokens[aud]
	}
	first := token()
	if got := first.expiry.Sub(first.minted); got != DefaultTokenLifetime {
		t.Fatalf("token lifetime %v, want %v", got, DefaultTokenLifetime)
	}

	// 44 minutes on: not yet due.
	clock.Store(int64(44 * time.Minute))
	conn.wake <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if token() != first {
		t.Fatal("the token was renewed with more than a quarter of its lifetime left")
	}
	// 46 minutes on: due, renewed on the same connection.
	clock.Store(int64(46 * time.Minute))
	conn.wake <- struct{}{}
	waitUntil(t, "the token's renewal", func() bool { return token() != first })
	if renewed := token(); renewed.failures != 0 || !renewed.expiry.After(first.expiry.Add(45*time.Minute)) {
		t.Fatalf("renewed token %+v, want one expiring 46 minutes after the first", renewed)
	}

	// The hub's clock passes the first token's expiry and its skew: the
	// stale client's link is detached, the renewing client's is not.
	srv.FastForward(DefaultTokenLifetime + 6*time.Minute)
	waitUntil(t, "the stale client's link to be refused", func() bool {
		return stale.SendC2D(ctx, "dev1", &C2DMessage{}) != nil
	})
	err := stale.SendC2D(ctx, "dev1", &C2DMessage{})
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("the stale client's send: %v; want ErrUnauthorized", err)
	}
	if err := renewing.SendC2D(ctx, "dev1", &C2DMessage{MessageID: "after"}); err != nil {
		t.Fatalf("SendC2D after the first token lapsed: %v", err)
	}
	if renewing.hub != conn || renewing.c2d != sender {
		t.Error("the renewing client reconnected; want the same connection and link")
	}
}

// TestAMQPRenewalFailure checks that a renewal the hub refuses is retried
// rather than given up.
func TestAMQPRenewalFailure(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, clock := newRenewalClient(t, srv)
	if err := c.SendC2D(ctx, "dev1", &C2DMessage{}); err != nil {
		t.Fatal(err)
	}
	conn := c.hub
	aud := c.hubAudience()
	var bad atomic.Bool
	bad.Store(true)
	good := conn.mint
	conn.mint = func(audience string, now time.Time) (string, time.Time, error) {
		if bad.Load() {
			// A token the hub refuses: signed with another key.
			p := &policyKey{keyName: "iothubowner", key: "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXkhIQ==", lifetime: time.Hour}
			return p.sasToken(audience, now)
		}
		return good(audience, now)
	}
	clock.Store(int64(50 * time.Minute))
	conn.wake <- struct{}{}
	waitUntil(t, "a failed renewal", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.tokens[aud].failures >= 1
	})
	bad.Store(false)
	waitUntil(t, "the renewal's retry", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		p := conn.tokens[aud]
		return p.failures == 0 && p.expiry.After(time.Now().Add(100*time.Minute))
	})
}

// TestAMQPReconnects closes the client's connections under it: the next
// send, the feedback receiver and an event receiver carry on over new
// ones, and the event receiver neither loses nor repeats an event.
func TestAMQPReconnects(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := NewFromConnectionString(srv.ConnectionString(), WithRootCAs(srv.CAPool()),
		WithRetryPolicy(ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, MaxFailures: 20}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Send.
	if err := c.SendC2D(ctx, "dev1", &C2DMessage{MessageID: "m1", Ack: AckFull}); err != nil {
		t.Fatal(err)
	}
	first := c.hub
	first.conn.Close()
	if err := c.SendC2D(ctx, "dev1", &C2DMessage{MessageID: "m2"}); err != nil {
		t.Fatalf("SendC2D after the connection closed: %v", err)
	}
	if c.hub == first {
		t.Error("the client kept the closed connection")
	}

	// A link that ended while the client was idle: the message had not
	// gone out, so the send goes again on a new link, once.
	if err := c.c2d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SendC2D(ctx, "dev1", &C2DMessage{MessageID: "m3"}); err != nil {
		t.Fatalf("SendC2D after the link closed: %v", err)
	}
	if pending, err := srv.PendingC2D("dev1"); err != nil || len(pending) != 3 {
		t.Fatalf("queue %v, %v; want m1, m2 and m3 once each", pending, err)
	}

	// Feedback: the receiver attaches again on the new connection.
	r := c.FeedbackReceiver()
	defer r.Close()
	d, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	d.OnMessage(func(m *device.Message) {
		mu.Lock()
		got = append(got, m.MessageID)
		if len(got) == 3 {
			close(done)
		}
		mu.Unlock()
	})
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the device did not receive the three messages")
	}
	second := c.hub
	go func() {
		time.Sleep(50 * time.Millisecond)
		second.conn.Close()
	}()
	b, err := r.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive across a lost connection: %v", err)
	}
	if len(b.Records) == 0 || b.Records[0].OriginalMessageID != "m1" {
		t.Errorf("records %+v, want m1's", b.Records)
	}
	if err := r.Complete(ctx, b); err != nil {
		t.Errorf("Complete: %v", err)
	}

	// Events: the receiver resumes after the last event it delivered.
	er, err := c.NewEventReceiver(ctx, EventReceiverOptions{Start: EventPosition{Earliest: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	sendEvent := func(id string) {
		t.Helper()
		if err := d.SendMessage(ctx, &device.Message{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		t.Helper()
		ev, err := er.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		return ev.MessageID
	}
	sendEvent("e1")
	if id := next(); id != "e1" {
		t.Fatalf("got %s, want e1", id)
	}
	er.mu.Lock()
	lost := er.conn
	er.mu.Unlock()
	lost.conn.Close()
	sendEvent("e2")
	sendEvent("e3")
	var after []string
	for range 2 {
		after = append(after, next())
	}
	if diff := cmp.Diff([]string{"e2", "e3"}, after); diff != "" {
		t.Errorf("events after the lost connection (-want +got):\n%s", diff)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if ev, err := er.Receive(short); err == nil {
		t.Errorf("got %s again after reconnecting", ev.MessageID)
	}
}

// TestAMQPRefusalIsNotRetried checks that the hub's refusal ends a call at
// once, however generous the retry policy.
func TestAMQPRefusalIsNotRetried(t *testing.T) {
	srv := emulator.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := NewFromConnectionString(srv.PolicyConnectionString("registryRead"), WithRootCAs(srv.CAPool()),
		WithRetryPolicy(ExponentialBackoff{Initial: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	r := c.FeedbackReceiver()
	defer r.Close()
	if _, err := r.Receive(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Receive: %v; want ErrUnauthorized", err)
	}
	if _, err := c.NewEventReceiver(ctx, EventReceiverOptions{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("NewEventReceiver: %v; want ErrUnauthorized", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Error("the refusals were retried")
	}
}

// TestAMQPStaticTokenIsNotRenewed checks that a client built from a
// ready-made token, which it cannot renew, does not put it again.
func TestAMQPStaticTokenIsNotRenewed(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pk, err := NewFromConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pk.cred.authorization(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewFromSASToken(pk.HostName(), tok, WithRootCAs(srv.CAPool()), WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var offset atomic.Int64
	c.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	if err := c.SendC2D(ctx, "dev1", &C2DMessage{}); err != nil {
		t.Fatal(err)
	}
	conn := c.hub
	aud := c.hubAudience()
	before := *conn.tokens[aud]
	offset.Store(int64(50 * time.Minute))
	conn.wake <- struct{}{}
	waitUntil(t, "the renewer to give the token up", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		p := conn.tokens[aud]
		return p.next.After(p.expiry)
	})
	conn.mu.Lock()
	after := *conn.tokens[aud]
	conn.mu.Unlock()
	if after.token != before.token || after.failures != 0 || !after.minted.Equal(before.minted) {
		t.Errorf("token %+v after renewal time, want the same one untouched", after)
	}
}
