// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// blockedSession stands for a device that stops reading: its sends block
// until released.
type blockedSession struct {
	release chan struct{}
	sent    atomic.Int32
	closed  chan struct{}
}

func (s *blockedSession) SendMethod(string, string, []byte) error { return nil }
func (s *blockedSession) SendDesired(int64, []byte) error {
	<-s.release
	s.sent.Add(1)
	return nil
}
func (s *blockedSession) Close() {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
}

// TestOutbox: an idle connection holds no send goroutine; sends run in
// order on one that ends when the queue is empty; a device that lets
// outboxSize sends pile up is disconnected.
func TestOutbox(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d1"})
	s := &blockedSession{release: make(chan struct{}), closed: make(chan struct{})}
	before := runtime.NumGoroutine()
	c := h.Connect(Identity{DeviceID: "d1"}, s, ConnectInfo{AuthMethod: "sas"})
	defer c.Disconnect()
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("an idle connection started %d goroutines", n-before)
	}
	// The send that runs (and blocks) has left the queue: outboxSize more
	// fit, or outboxSize when the refusal comes before it started.
	var order []int
	accepted := 0
	for i := range outboxSize + 2 {
		if !c.post(func() {
			order = append(order, i)
			_ = s.SendDesired(int64(i), nil)
		}) {
			break
		}
		accepted++
	}
	if accepted != outboxSize && accepted != outboxSize+1 {
		t.Fatalf("%d sends queued for a device that reads nothing, want %d", accepted, outboxSize+1)
	}
	select {
	case <-s.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a device with a full queue was not disconnected")
	}
	close(s.release)
	deadline := time.Now().Add(10 * time.Second)
	for int(s.sent.Load()) < accepted && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.outMu.Lock()
	running := c.outRunning
	c.outMu.Unlock()
	if int(s.sent.Load()) != accepted || running {
		t.Fatalf("%d sends ran, goroutine running %v; want %d, none", s.sent.Load(), running, accepted)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("send %d ran as the %dth", v, i)
		}
	}
}

// TestTelemetryGeneration: telemetry carries the sending device's
// generation, read from its connection or, without one, from the registry,
// and a device deleted and created again stamps its new generation.
func TestTelemetryGeneration(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	id := Identity{DeviceID: "d1"}
	send := func(want string) {
		t.Helper()
		if err := h.RecordTelemetry(ctx, id, "sas", TransportHTTPS, &Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		ms, err := h.Telemetry(id.DeviceID, "", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if got := ms[len(ms)-1].GenerationID; got != want {
			t.Fatalf("telemetry stamped with generation %q, want %q", got, want)
		}
	}
	d := regDevice(t, h, Device{DeviceID: "d1"})
	send(d.GenerationID) // no connection: from the registry
	c := h.Connect(id, &regSession{}, ConnectInfo{AuthMethod: "sas"})
	defer c.Disconnect()
	send(d.GenerationID) // from the connection
	if err := h.DeleteDevice(ctx, "d1", "*"); err != nil {
		t.Fatal(err)
	}
	d2 := regDevice(t, h, Device{DeviceID: "d1"})
	if d2.GenerationID == d.GenerationID {
		t.Fatal("a re-created device kept its generation")
	}
	c2 := h.Connect(id, &regSession{}, ConnectInfo{AuthMethod: "sas"})
	defer c2.Disconnect()
	send(d2.GenerationID)
}

// TestEnqueuedBefore: the stored message's enqueued time is read the same
// from json.Marshal's layout and, through the decoder, from any other.
func TestEnqueuedBefore(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	stored, err := json.Marshal(&Message{SequenceNumber: 12345678901, EnqueuedTime: at, DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(`{"deviceId":"d","enqueuedTime":"` + at.Format(time.RFC3339Nano) + `"}`)
	for _, v := range [][]byte{stored, other} {
		for _, c := range []struct {
			t    time.Time
			want bool
		}{{at.Add(time.Nanosecond), true}, {at, false}, {at.Add(-time.Hour), false}} {
			if got := enqueuedBefore(v, c.t); got != c.want {
				t.Errorf("enqueuedBefore(%s, %v) = %v, want %v", v, c.t, got, c.want)
			}
		}
	}
}
