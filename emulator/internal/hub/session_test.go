// SPDX-License-Identifier: MIT

package hub

import (
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
