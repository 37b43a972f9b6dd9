// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// c2dSession is a connected device that records the cloud-to-device
// messages the hub writes to it. The hub writes from each connection's
// send goroutine; take first waits for every send queued so far.
type c2dSession struct {
	hub    *Hub
	mu     sync.Mutex
	sent   []C2DMessage
	fail   error // SendC2D fails with this when set
	closed bool
}

func (s *c2dSession) SendMethod(string, string, []byte) error { return nil }
func (s *c2dSession) SendDesired(int64, []byte) error         { return nil }

func (s *c2dSession) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *c2dSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *c2dSession) SendC2D(m *C2DMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.sent = append(s.sent, *m)
	return nil
}

func (s *c2dSession) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// take returns and clears what was sent so far.
func (s *c2dSession) take() []C2DMessage {
	if s.hub != nil {
		s.hub.drainAll()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

// c2dEnv is a hub whose clock stands still until advance, and a device.
type c2dEnv struct {
	t   *testing.T
	hub *Hub
	dev *Device
}

func newC2DEnv(t *testing.T) *c2dEnv {
	t.Helper()
	h := newRegHub(t)
	return &c2dEnv{t: t, hub: h, dev: regDevice(t, h, Device{DeviceID: "dev1"})}
}

// connect registers a live session for the device; subscribe also
// subscribes it to cloud-to-device messages.
func (e *c2dEnv) connect(deviceID string, subscribe bool) (*Conn, *c2dSession) {
	e.t.Helper()
	s := &c2dSession{hub: e.hub}
	c := e.hub.Connect(Identity{DeviceID: deviceID}, s, ConnectInfo{AuthMethod: "sas"})
	e.t.Cleanup(c.Disconnect)
	if subscribe {
		c.SubscribeC2D()
	}
	return c, s
}

// send queues a message with the given id and ack.
func (e *c2dEnv) send(deviceID, messageID, ack string, ttl time.Duration) *C2DMessage {
	e.t.Helper()
	m, err := e.hub.SendC2D(context.Background(), deviceID, &C2DMessage{MessageID: messageID, Ack: ack, Body: []byte("body " + messageID)}, ttl)
	if err != nil {
		e.t.Fatalf("SendC2D %s: %v", messageID, err)
	}
	return m
}

// pending returns the ids and delivery counts of the device's queue.
func (e *c2dEnv) pending(deviceID string) map[string]int {
	e.t.Helper()
	e.hub.drainAll()
	ms, err := e.hub.PendingC2D(deviceID)
	if err != nil {
		e.t.Fatalf("PendingC2D: %v", err)
	}
	out := map[string]int{}
	for _, m := range ms {
		out[m.MessageID] = m.DeliveryCount
	}
	return out
}

func (e *c2dEnv) feedback() []Feedback {
	e.t.Helper()
	e.hub.drainAll()
	fb, err := e.hub.Feedback()
	if err != nil {
		e.t.Fatalf("Feedback: %v", err)
	}
	return fb
}

// ids returns the message ids of sent messages, in order.
func ids(ms []C2DMessage) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}

func TestC2DDeliveryWhileSubscribed(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "q1", "", 0)
	e.send("dev1", "q2", "", 0)
	c, s := e.connect("dev1", false)
	if got := s.take(); len(got) != 0 {
		t.Fatalf("before SUBSCRIBE: got %v sent, want nothing", ids(got))
	}

	c.SubscribeC2D()
	got := s.take()
	if diff := cmp.Diff([]string{"q1", "q2"}, ids(got)); diff != "" {
		t.Fatalf("queued messages on subscribe (-want +got):\n%s", diff)
	}
	for _, m := range got {
		if m.DeliveryCount != 1 || m.LockToken == "" || !m.LockedUntil.IsZero() {
			t.Errorf("%s: got delivery count %d, lock %q until %v; want 1, a token, no HTTPS lock", m.MessageID, m.DeliveryCount, m.LockToken, m.LockedUntil)
		}
		if m.To != "/devices/dev1/messages/deviceBound" || m.Ack != AckNone || string(m.Body) != "body "+m.MessageID {
			t.Errorf("%s: got to %q, ack %q, body %q", m.MessageID, m.To, m.Ack, m.Body)
		}
	}
	if got[0].LockToken == got[1].LockToken {
		t.Error("two messages share a lock token")
	}

	e.send("dev1", "live", "", 0)
	if got := ids(s.take()); !cmp.Equal(got, []string{"live"}) {
		t.Fatalf("sent while subscribed: got %v, want [live]", got)
	}

	// Subscribing again does not resend what is in flight.
	c.SubscribeC2D()
	if got := s.take(); len(got) != 0 {
		t.Fatalf("re-SUBSCRIBE: got %v resent, want nothing while in flight", ids(got))
	}

	c.UnsubscribeC2D()
	e.send("dev1", "after", "", 0)
	if got := s.take(); len(got) != 0 {
		t.Fatalf("after UNSUBSCRIBE: got %v sent, want nothing", ids(got))
	}
	want := map[string]int{"q1": 1, "q2": 1, "live": 1, "after": 0}
	if diff := cmp.Diff(want, e.pending("dev1")); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
}

func TestC2DCompleteRemovesMessage(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "a", AckFull, 0)
	e.send("dev1", "b", AckFull, 0)
	c, s := e.connect("dev1", true)
	sent := s.take()

	c.CompleteC2D("not-a-token")
	c.CompleteC2D(sent[0].LockToken)
	c.CompleteC2D(sent[0].LockToken) // a duplicate PUBACK changes nothing
	if diff := cmp.Diff(map[string]int{"b": 1}, e.pending("dev1")); diff != "" {
		t.Fatalf("queue after completing a (-want +got):\n%s", diff)
	}
	want := []Feedback{{OriginalMessageID: "a", DeviceGenerationID: e.dev.GenerationID, DeviceID: "dev1",
		EnqueuedTimeUTC: regNow, StatusCode: FeedbackSuccess, Description: "Success"}}
	if diff := cmp.Diff(want, e.feedback()); diff != "" {
		t.Errorf("feedback (-want +got):\n%s", diff)
	}
}

// TestC2DFeedbackPerAck produces every outcome under every ack mode and
// checks that feedback is recorded exactly when the mode asks for it.
func TestC2DFeedbackPerAck(t *testing.T) {
	outcomes := []struct {
		status  string
		produce func(e *c2dEnv)
	}{
		{FeedbackSuccess, func(e *c2dEnv) {
			c, s := e.connect("dev1", true)
			c.CompleteC2D(s.take()[0].LockToken)
		}},
		{FeedbackRejected, func(e *c2dEnv) {
			m := e.receive(time.Minute)
			if err := e.hub.CompleteC2DLock(context.Background(), "dev1", m.LockToken, true); err != nil {
				e.t.Fatalf("reject: %v", err)
			}
		}},
		{FeedbackExpired, func(e *c2dEnv) {
			e.hub.Clock().FastForward(DefaultC2DTTL + time.Second)
		}},
		{FeedbackDeliveryCountExceeded, func(e *c2dEnv) {
			for range MaxDeliveryCount {
				m := e.receive(time.Minute)
				if err := e.hub.AbandonC2DLock(context.Background(), "dev1", m.LockToken); err != nil {
					e.t.Fatalf("abandon: %v", err)
				}
			}
			if m, err := e.hub.ReceiveC2D(context.Background(), "dev1", 0); err != nil || m != nil {
				e.t.Fatalf("receive after %d deliveries: got %v, %v; want nothing", MaxDeliveryCount, m, err)
			}
		}},
	}
	for _, ack := range []string{AckNone, AckPositive, AckNegative, AckFull} {
		for _, o := range outcomes {
			t.Run(ack+"/"+o.status, func(t *testing.T) {
				e := newC2DEnv(t)
				e.send("dev1", "m1", ack, 0)
				o.produce(e)
				if got := e.pending("dev1"); len(got) != 0 {
					t.Fatalf("queue after %s: got %v, want empty", o.status, got)
				}
				var wanted bool
				switch ack {
				case AckFull:
					wanted = true
				case AckPositive:
					wanted = o.status == FeedbackSuccess
				case AckNegative:
					wanted = o.status != FeedbackSuccess
				}
				var want []Feedback
				if wanted {
					want = []Feedback{{OriginalMessageID: "m1", DeviceGenerationID: e.dev.GenerationID, DeviceID: "dev1",
						EnqueuedTimeUTC: e.hub.Now(), StatusCode: o.status, Description: feedbackDescription[o.status]}}
				}
				if diff := cmp.Diff(want, e.feedback()); diff != "" {
					t.Errorf("feedback (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// receive locks the next message for an HTTPS receive, failing if there is none.
func (e *c2dEnv) receive(lock time.Duration) *C2DMessage {
	e.t.Helper()
	m, err := e.hub.ReceiveC2D(context.Background(), "dev1", lock)
	if err != nil || m == nil {
		e.t.Fatalf("ReceiveC2D: got %v, %v; want a message", m, err)
	}
	return m
}

func TestC2DSendRefusals(t *testing.T) {
	props := func(n int) map[string]string { return map[string]string{"k": strings.Repeat("v", n)} }
	tests := []struct {
		name string
		dev  string
		msg  C2DMessage
		ttl  time.Duration
		code int // 0: accepted
	}{
		{"body of exactly 64 KB", "dev1", C2DMessage{Body: make([]byte, MaxC2DSize)}, 0, 0},
		{"body over 64 KB", "dev1", C2DMessage{Body: make([]byte, MaxC2DSize+1)}, 0, 413001},
		{"properties count towards 64 KB", "dev1", C2DMessage{Body: make([]byte, MaxC2DSize-10), Properties: props(10)}, 0, 413001},
		{"unknown ack", "dev1", C2DMessage{Ack: "sometimes"}, 0, 400004},
		{"TTL of 48 hours", "dev1", C2DMessage{}, MaxC2DTTL, 0},
		{"TTL over 48 hours", "dev1", C2DMessage{}, MaxC2DTTL + time.Second, 400004},
		{"unknown device", "nobody", C2DMessage{}, 0, 404001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newC2DEnv(t)
			msg := tt.msg
			_, err := e.hub.SendC2D(context.Background(), tt.dev, &msg, tt.ttl)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("got %v, want the message accepted", err)
				}
				return
			}
			wantCode(t, tt.name, err, tt.code)
			if got := e.pending(tt.dev); len(got) != 0 {
				t.Errorf("queue after a refused send: got %v, want empty", got)
			}
		})
	}
}

func TestC2DQueueLimit(t *testing.T) {
	e := newC2DEnv(t)
	for i := range MaxC2DQueue {
		ttl := time.Hour
		if i == 0 {
			ttl = time.Minute // expires first, below
		}
		e.send("dev1", fmt.Sprintf("m%02d", i), AckNegative, ttl)
	}
	_, err := e.hub.SendC2D(context.Background(), "dev1", &C2DMessage{MessageID: "over"}, 0)
	wantCode(t, "51st message", err, 403004)

	// An expired message no longer counts: the queue has room again.
	e.hub.Clock().FastForward(2 * time.Minute)
	e.send("dev1", "fits", "", 0)
	if got := len(e.pending("dev1")); got != MaxC2DQueue {
		t.Errorf("queue length: got %d, want %d", got, MaxC2DQueue)
	}
	if fb := e.feedback(); len(fb) != 1 || fb[0].StatusCode != FeedbackExpired || fb[0].OriginalMessageID != "m00" {
		t.Errorf("feedback: got %+v, want Expired for m00", fb)
	}
}

func TestC2DExpiry(t *testing.T) {
	e := newC2DEnv(t)
	short := e.send("dev1", "short", AckFull, 30*time.Second)
	long := e.send("dev1", "long", AckFull, 0)
	if want := regNow.Add(30 * time.Second); !short.ExpiryTime.Equal(want) || !short.EnqueuedTime.Equal(regNow) {
		t.Errorf("short: got enqueued %v, expiry %v; want %v, %v", short.EnqueuedTime, short.ExpiryTime, regNow, want)
	}
	if want := regNow.Add(DefaultC2DTTL); !long.ExpiryTime.Equal(want) {
		t.Errorf("default TTL: got expiry %v, want %v", long.ExpiryTime, want)
	}

	// At the expiry instant the message is still deliverable.
	e.hub.Clock().FastForward(30 * time.Second)
	if got := e.pending("dev1"); len(got) != 2 {
		t.Fatalf("at the expiry time: got queue %v, want both", got)
	}
	e.hub.Clock().FastForward(time.Millisecond)
	_, s := e.connect("dev1", true)
	if got := ids(s.take()); !cmp.Equal(got, []string{"long"}) {
		t.Fatalf("delivered after expiry: got %v, want [long]", got)
	}
	if diff := cmp.Diff(map[string]int{"long": 1}, e.pending("dev1")); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	want := []Feedback{{OriginalMessageID: "short", DeviceGenerationID: e.dev.GenerationID, DeviceID: "dev1",
		EnqueuedTimeUTC: regNow.Add(30*time.Second + time.Millisecond), StatusCode: FeedbackExpired, Description: "Message expired"}}
	if diff := cmp.Diff(want, e.feedback()); diff != "" {
		t.Errorf("feedback (-want +got):\n%s", diff)
	}
}

func TestC2DRedeliveryAfterDisconnect(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "m", AckFull, 0)
	c1, s1 := e.connect("dev1", true)
	first := s1.take()[0]

	// In flight on a live connection: not receivable over HTTPS either.
	if m, err := e.hub.ReceiveC2D(context.Background(), "dev1", 0); err != nil || m != nil {
		t.Fatalf("HTTPS receive of a message in flight: got %v, %v; want nothing", m, err)
	}
	c1.Disconnect()
	c2, s2 := e.connect("dev1", true)
	got := s2.take()
	if len(got) != 1 || got[0].MessageID != "m" || got[0].DeliveryCount != 2 || got[0].LockToken == first.LockToken {
		t.Fatalf("redelivery: got %+v, want m with delivery count 2 and a new lock token", got)
	}
	c1.CompleteC2D(first.LockToken) // a PUBACK on the dead connection is too late
	if diff := cmp.Diff(map[string]int{"m": 2}, e.pending("dev1")); diff != "" {
		t.Fatalf("queue after a stale completion (-want +got):\n%s", diff)
	}
	c2.CompleteC2D(got[0].LockToken)
	if got := e.pending("dev1"); len(got) != 0 {
		t.Errorf("queue after completion: got %v, want empty", got)
	}
}

func TestC2DRedeliveryAfterTakeover(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "m", "", 0)
	_, s1 := e.connect("dev1", true)
	if len(s1.take()) != 1 {
		t.Fatal("first connection got no message")
	}
	// A second connection of the same identity closes the first (§3.3).
	_, s2 := e.connect("dev1", true)
	if !s1.isClosed() {
		t.Error("the older connection was not closed")
	}
	if got := s2.take(); len(got) != 1 || got[0].DeliveryCount != 2 {
		t.Fatalf("after takeover: got %+v, want m again with delivery count 2", got)
	}
}

func TestC2DMaxDeliveryCount(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "m", AckNegative, 0)
	for i := 1; i <= MaxDeliveryCount; i++ {
		c, s := e.connect("dev1", true)
		got := s.take()
		if len(got) != 1 || got[0].DeliveryCount != i {
			t.Fatalf("connection %d: got %+v, want m with delivery count %d", i, got, i)
		}
		c.Disconnect()
	}
	_, s := e.connect("dev1", true)
	if got := s.take(); len(got) != 0 {
		t.Fatalf("after %d deliveries: got %v sent, want the message dead-lettered", MaxDeliveryCount, ids(got))
	}
	if got := e.pending("dev1"); len(got) != 0 {
		t.Errorf("queue: got %v, want empty", got)
	}
	if fb := e.feedback(); len(fb) != 1 || fb[0].StatusCode != FeedbackDeliveryCountExceeded {
		t.Errorf("feedback: got %+v, want DeliveryCountExceeded", fb)
	}
}

func TestC2DHTTPSLocks(t *testing.T) {
	ctx := context.Background()
	t.Run("complete", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		m := e.receive(30 * time.Second)
		if m.DeliveryCount != 1 || !m.LockedUntil.Equal(regNow.Add(30*time.Second)) {
			t.Errorf("got delivery count %d, locked until %v; want 1, %v", m.DeliveryCount, m.LockedUntil, regNow.Add(30*time.Second))
		}
		if again, err := e.hub.ReceiveC2D(ctx, "dev1", 0); err != nil || again != nil {
			t.Fatalf("second receive while locked: got %v, %v; want nothing", again, err)
		}
		if err := e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, false); err != nil {
			t.Fatalf("complete: %v", err)
		}
		wantCode(t, "second complete", e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, false), 412002)
		if got := e.pending("dev1"); len(got) != 0 {
			t.Errorf("queue: got %v, want empty", got)
		}
	})
	t.Run("abandon", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		m := e.receive(0)
		if !m.LockedUntil.Equal(regNow.Add(DefaultLockTimeout)) {
			t.Errorf("default lock: got until %v, want %v", m.LockedUntil, regNow.Add(DefaultLockTimeout))
		}
		if err := e.hub.AbandonC2DLock(ctx, "dev1", m.LockToken); err != nil {
			t.Fatalf("abandon: %v", err)
		}
		wantCode(t, "complete after abandon", e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, false), 412002)
		again := e.receive(0)
		if again.DeliveryCount != 2 || again.LockToken == m.LockToken {
			t.Errorf("after abandon: got delivery count %d, token %q; want 2 and a new token", again.DeliveryCount, again.LockToken)
		}
	})
	t.Run("lock expiry", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		m := e.receive(10 * time.Second)
		e.hub.Clock().FastForward(10 * time.Second)
		wantCode(t, "complete at lock expiry", e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, false), 412002)
		wantCode(t, "abandon at lock expiry", e.hub.AbandonC2DLock(ctx, "dev1", m.LockToken), 412002)
		wantCode(t, "reject at lock expiry", e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, true), 412002)
		again := e.receive(0)
		if again.DeliveryCount != 2 {
			t.Errorf("after lock expiry: got delivery count %d, want 2", again.DeliveryCount)
		}
		wantCode(t, "the old lock after a new receive", e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, false), 412002)
	})
	t.Run("reject", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", AckFull, 0)
		m := e.receive(0)
		if err := e.hub.CompleteC2DLock(ctx, "dev1", m.LockToken, true); err != nil {
			t.Fatalf("reject: %v", err)
		}
		if got := e.pending("dev1"); len(got) != 0 {
			t.Errorf("queue: got %v, want empty", got)
		}
		if fb := e.feedback(); len(fb) != 1 || fb[0].StatusCode != FeedbackRejected || fb[0].Description != "Message rejected" {
			t.Errorf("feedback: got %+v, want Rejected", fb)
		}
	})
	t.Run("lock timeout limits", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		_, err := e.hub.ReceiveC2D(ctx, "dev1", MaxLockTimeout+time.Second)
		wantCode(t, "lock over 300 s", err, 400004)
		if m := e.receive(MaxLockTimeout); !m.LockedUntil.Equal(regNow.Add(MaxLockTimeout)) {
			t.Errorf("lock of 300 s: got until %v", m.LockedUntil)
		}
	})
	t.Run("empty queue", func(t *testing.T) {
		e := newC2DEnv(t)
		if m, err := e.hub.ReceiveC2D(ctx, "dev1", 0); err != nil || m != nil {
			t.Fatalf("got %v, %v; want nothing", m, err)
		}
		wantCode(t, "complete with an unknown token", e.hub.CompleteC2DLock(ctx, "dev1", "nope", false), 412002)
	})
	t.Run("lock expiry reaches an MQTT subscriber", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		e.receive(30 * time.Second)
		_, s := e.connect("dev1", true)
		if got := s.take(); len(got) != 0 {
			t.Fatalf("locked message sent over MQTT: %v", ids(got))
		}
		e.hub.Clock().FastForward(30 * time.Second)
		// The redelivery runs on a timer goroutine, then on the
		// connection's send goroutine: wait for it to be posted.
		var got []C2DMessage
		testutil.Eventually(t, "the redelivery", func() bool { got = s.take(); return len(got) > 0 })
		if len(got) != 1 || got[0].DeliveryCount != 2 {
			t.Fatalf("after the lock ran out: got %+v, want the message with delivery count 2", got)
		}
	})
	t.Run("abandon reaches an MQTT subscriber", func(t *testing.T) {
		e := newC2DEnv(t)
		e.send("dev1", "m", "", 0)
		m := e.receive(0)
		_, s := e.connect("dev1", true)
		if got := s.take(); len(got) != 0 {
			t.Fatalf("locked message sent over MQTT: %v", ids(got))
		}
		if err := e.hub.AbandonC2DLock(ctx, "dev1", m.LockToken); err != nil {
			t.Fatal(err)
		}
		if got := s.take(); len(got) != 1 || got[0].DeliveryCount != 2 {
			t.Fatalf("after abandon: got %+v, want the message with delivery count 2", got)
		}
	})
}

// TestC2DFailedWriteIsNoDelivery checks that a message the session could
// not write keeps its delivery count and goes out on the next pass.
func TestC2DFailedWriteIsNoDelivery(t *testing.T) {
	e := newC2DEnv(t)
	c, s := e.connect("dev1", true)
	s.setFail(errors.New("connection reset"))
	e.send("dev1", "a", "", 0)
	e.send("dev1", "b", "", 0)
	e.hub.drainAll() // the delivery passes (and their failed writes) have run
	ms, err := e.hub.PendingC2D("dev1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.DeliveryCount != 0 || m.LockToken != "" {
			t.Errorf("%s after a failed write: got delivery count %d, lock %q; want 0 and none", m.MessageID, m.DeliveryCount, m.LockToken)
		}
	}
	s.setFail(nil)
	c.SubscribeC2D()
	got := s.take()
	if diff := cmp.Diff([]string{"a", "b"}, ids(got)); diff != "" {
		t.Fatalf("next pass (-want +got):\n%s", diff)
	}
	if got[0].DeliveryCount != 1 || got[1].DeliveryCount != 1 {
		t.Errorf("delivery counts: got %d, %d; want 1, 1", got[0].DeliveryCount, got[1].DeliveryCount)
	}
}

func TestC2DIsolation(t *testing.T) {
	e := newC2DEnv(t)
	regDevice(t, e.hub, Device{DeviceID: "dev2"})
	regDevice(t, e.hub, Device{DeviceID: "edge"})
	if _, err := e.hub.PutModule(context.Background(), &Module{DeviceID: "edge", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	_, s1 := e.connect("dev1", true)
	_, s2 := e.connect("dev2", true)
	ms := &c2dSession{hub: e.hub}
	mc := e.hub.Connect(Identity{DeviceID: "edge", ModuleID: "m1"}, ms, ConnectInfo{AuthMethod: "sas"})
	t.Cleanup(mc.Disconnect)
	mc.SubscribeC2D()

	e.send("dev2", "for2", "", 0)
	e.send("edge", "forEdge", "", 0)
	if got := s1.take(); len(got) != 0 {
		t.Errorf("dev1 got %v, want nothing", ids(got))
	}
	if got := ids(s2.take()); !cmp.Equal(got, []string{"for2"}) {
		t.Errorf("dev2 got %v, want [for2]", got)
	}
	if got := ms.take(); len(got) != 0 {
		t.Errorf("module edge/m1 got %v: cloud-to-device messages are for devices only", ids(got))
	}
	if got := e.pending("dev1"); len(got) != 0 {
		t.Errorf("dev1's queue: got %v, want empty", got)
	}
}

func BenchmarkC2DSendDeliverComplete(b *testing.B) {
	db, err := store.OpenTemp()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	if _, err := h.PutDevice(context.Background(), &Device{DeviceID: "dev1"}, ""); err != nil {
		b.Fatal(err)
	}
	s := &c2dSession{hub: h}
	c := h.Connect(Identity{DeviceID: "dev1"}, s, ConnectInfo{AuthMethod: "sas"})
	defer c.Disconnect()
	c.SubscribeC2D()
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.SendC2D(ctx, "dev1", &C2DMessage{Body: []byte("x")}, 0); err != nil {
			b.Fatal(err)
		}
		for _, m := range s.take() {
			c.CompleteC2D(m.LockToken)
		}
	}
}

// ackingSession acknowledges every message it is sent from another
// goroutine, as a device's PUBACK reaches the hub from the connection's
// read loop while the back end keeps sending.
type ackingSession struct {
	c2dSession
	acks chan string
}

func (s *ackingSession) SendC2D(m *C2DMessage) error {
	if err := s.c2dSession.SendC2D(m); err != nil {
		return err
	}
	s.acks <- m.LockToken
	return nil
}

// TestC2DNoDoubleDeliveryWhileCompleting sends while earlier messages are
// being completed; no message may be delivered twice.
func TestC2DNoDoubleDeliveryWhileCompleting(t *testing.T) {
	e := newC2DEnv(t)
	const n = 200
	s := &ackingSession{acks: make(chan string, n)}
	c := e.hub.Connect(Identity{DeviceID: "dev1"}, s, ConnectInfo{AuthMethod: "sas"})
	t.Cleanup(c.Disconnect)
	c.SubscribeC2D()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range s.acks {
			c.CompleteC2D(tok)
		}
	}()
	// In rounds that stay below the queue limit whatever the acks' pace.
	for i := range n {
		e.send("dev1", fmt.Sprintf("m%03d", i), "", 0)
		if i%40 == 39 {
			testutil.Eventually(t, "acknowledged messages to leave the queue", func() bool { return len(e.pending("dev1")) == 0 })
		}
	}
	close(s.acks)
	<-done
	seen := map[string]int{}
	for _, m := range s.take() {
		seen[m.MessageID]++
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times, want once", id, k)
		}
	}
	if len(seen) != n {
		t.Errorf("got %d distinct messages delivered, want %d", len(seen), n)
	}
}

// drainAll waits until every send queued so far on a live connection has
// run, so a test can look at what the hub wrote.
func (h *Hub) drainAll() {
	h.mu.Lock()
	cs := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		done := make(chan struct{})
		if c.post(func() { close(done) }) {
			select {
			case <-done:
			case <-c.stop:
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// TestC2DLiveRejectAndAbandon covers the outcomes an AMQP device settles a
// delivered message with: rejected dead-letters it with Rejected feedback,
// released or modified (AbandonC2D) delivers it again on the same
// connection with a higher delivery count, until MaxDeliveryCount.
func TestC2DLiveRejectAndAbandon(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "r", AckFull, 0)
	e.send("dev1", "a", AckNegative, 0)
	c, s := e.connect("dev1", true)
	sent := s.take()
	if diff := cmp.Diff([]string{"r", "a"}, ids(sent)); diff != "" {
		t.Fatalf("delivered (-want +got):\n%s", diff)
	}

	c.RejectC2D("not-a-token")
	c.RejectC2D(sent[0].LockToken)
	c.RejectC2D(sent[0].LockToken) // twice changes nothing
	if fb := e.feedback(); len(fb) != 1 || fb[0].OriginalMessageID != "r" || fb[0].StatusCode != FeedbackRejected || fb[0].Description != "Message rejected" {
		t.Fatalf("feedback after reject: got %+v, want one Rejected for r", fb)
	}

	token := sent[1].LockToken
	for i := 2; i <= MaxDeliveryCount; i++ {
		c.AbandonC2D(token)
		got := s.take()
		if len(got) != 1 || got[0].MessageID != "a" || got[0].DeliveryCount != i || got[0].LockToken == token {
			t.Fatalf("abandon %d: got %+v, want a again with delivery count %d and a new lock token", i-1, got, i)
		}
		token = got[0].LockToken
	}
	c.AbandonC2D(token)
	if got := s.take(); len(got) != 0 {
		t.Fatalf("after %d deliveries: got %v, want the message dead-lettered", MaxDeliveryCount, ids(got))
	}
	if got := e.pending("dev1"); len(got) != 0 {
		t.Errorf("queue: got %v, want empty", got)
	}
	fb := e.feedback()
	if len(fb) != 2 || fb[1].OriginalMessageID != "a" || fb[1].StatusCode != FeedbackDeliveryCountExceeded {
		t.Errorf("feedback: got %+v, want DeliveryCountExceeded for a after the Rejected of r", fb)
	}
}

// TestC2DLiveOutcomesNeedTheConnection: a connection cannot settle what is
// in flight on another one (one device's AMQP connection cannot touch the
// lock tokens of its takeover successor), and an abandon while unsubscribed
// leaves the message queued until the device subscribes again.
func TestC2DLiveOutcomesNeedTheConnection(t *testing.T) {
	e := newC2DEnv(t)
	e.send("dev1", "m", AckFull, 0)
	old, s1 := e.connect("dev1", true)
	token := s1.take()[0].LockToken
	c, s2 := e.connect("dev1", false) // takes over: m becomes deliverable again
	old.RejectC2D(token)
	old.AbandonC2D(token)
	if got := e.pending("dev1"); !cmp.Equal(got, map[string]int{"m": 1}) {
		t.Fatalf("queue after outcomes from a replaced connection: got %v, want m untouched", got)
	}
	c.SubscribeC2D()
	got := s2.take()
	if len(got) != 1 || got[0].DeliveryCount != 2 {
		t.Fatalf("redelivery: got %+v, want m with delivery count 2", got)
	}
	c.UnsubscribeC2D()
	c.AbandonC2D(got[0].LockToken)
	if got := s2.take(); len(got) != 0 {
		t.Fatalf("abandon while unsubscribed: got %v sent, want nothing", ids(got))
	}
	c.SubscribeC2D()
	if got := s2.take(); len(got) != 1 || got[0].DeliveryCount != 3 {
		t.Fatalf("after subscribing again: got %+v, want m with delivery count 3", got)
	}
	if fb := e.feedback(); len(fb) != 0 {
		t.Errorf("feedback: got %+v, want none yet", fb)
	}
}
