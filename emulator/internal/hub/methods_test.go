// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// methodSession answers (or ignores) method requests through a function
// and can be made to block every write, like a device that stopped reading.
type methodSession struct {
	mu      sync.Mutex
	conn    *Conn
	answer  func(c *Conn, rid string) // nil: never answer
	block   chan struct{}             // non-nil: every write waits on it
	desired int
	closed  bool
}

func (s *methodSession) wait() {
	s.mu.Lock()
	b := s.block
	s.mu.Unlock()
	if b != nil {
		<-b
	}
}

func (s *methodSession) SendMethod(rid, name string, payload []byte) error {
	s.wait()
	s.mu.Lock()
	c, f := s.conn, s.answer
	s.mu.Unlock()
	if f != nil {
		go f(c, rid)
	}
	return nil
}

func (s *methodSession) SendDesired(int64, []byte) error {
	s.wait()
	s.mu.Lock()
	s.desired++
	s.mu.Unlock()
	return nil
}

func (s *methodSession) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func connectMethods(t *testing.T, h *Hub, id Identity, s *methodSession) *Conn {
	t.Helper()
	c := h.Connect(id, s, ConnectInfo{AuthMethod: "sas"})
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	c.SubscribeMethods()
	t.Cleanup(c.Disconnect)
	return c
}

func TestInvokeMethodPayloads(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d"})
	cases := []struct{ name, answer, want string }{
		{"json", `{"ok":true}`, `{"ok":true}`},
		{"empty becomes null", ``, `null`},
		{"JSON padded with NULs stays JSON", "{\"ok\":true}\x00\x00\n\x00", `{"ok":true}`},
		{"a string padded with NULs", "\"done\"\x00", `"done"`},
		{"only NULs become null", "\x00\x00", `null`},
		{"non-JSON is wrapped as a string", `hello "world"`, `"hello \"world\""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &methodSession{answer: func(c *Conn, rid string) { c.ResolveMethod(rid, 200, []byte(tc.answer)) }}
			connectMethods(t, h, Identity{DeviceID: "d"}, s)
			res, err := h.InvokeMethod(context.Background(), Identity{DeviceID: "d"}, MethodRequest{Name: "m", ResponseTimeout: MinResponseTimeout})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Payload) != tc.want || res.Status != 200 {
				t.Fatalf("got %d %s, want 200 %s", res.Status, res.Payload, tc.want)
			}
		})
	}
}

// TestInvokeMethodTimesOut: a subscribed device that never answers gets
// 504101 when the hub's clock passes the response timeout, and not before.
func TestInvokeMethodTimesOut(t *testing.T) {
	t.Parallel()
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "mute"})
	connectMethods(t, h, Identity{DeviceID: "mute"}, &methodSession{})
	done := make(chan error, 1)
	go func() {
		_, err := h.InvokeMethod(context.Background(), Identity{DeviceID: "mute"}, MethodRequest{Name: "m", ResponseTimeout: MinResponseTimeout})
		done <- err
	}()
	waitTimers(t, h, 1)
	h.Clock().FastForward(MinResponseTimeout - time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the call ended before its response timeout: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	h.Clock().FastForward(time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, huberr.GatewayTimeout(0)) {
			t.Fatalf("got %v, want 504101 GatewayTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not time out when the clock passed its response timeout")
	}
	calls := h.MethodCalls("mute")
	if len(calls) != 1 || calls[0].ErrorCode != 504101 || calls[0].DurationMs != MinResponseTimeout.Milliseconds() {
		t.Fatalf("recorded calls: %+v", calls)
	}
}

// waitTimers waits until the hub's clock has at least n deadlines armed,
// so that a test moves the clock only once the code under test waits.
func waitTimers(t *testing.T, h *Hub, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d clock timers to be armed", n), func() bool { return h.Clock().Pending() >= n })
}

// TestStuckDeviceStallsNoOne: a device whose writes block (it stopped
// reading) must not delay twin writes of devices that share its lock
// stripe, nor its own service-side writes, nor other devices' methods.
func TestStuckDeviceStallsNoOne(t *testing.T) {
	h := newRegHub(t)
	stuckID := Identity{DeviceID: "stuck"}
	regDevice(t, h, Device{DeviceID: "stuck"})
	// Find a device id that shares the stuck device's lock stripe.
	var other string
	for i := 0; other == ""; i++ {
		cand := "other" + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		if &h.twinLock[stripe(cand)] == &h.twinLock[stripe("stuck")] {
			other = cand
		}
	}
	regDevice(t, h, Device{DeviceID: other})
	block := make(chan struct{})
	defer close(block)
	stuck := &methodSession{block: block}
	c := connectMethods(t, h, stuckID, stuck)
	c.SubscribeDesired()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 50; i++ {
			if _, err := h.UpdateTwin(context.Background(), stuckID, []byte(`{"properties":{"desired":{"x":1}}}`), "", false); err != nil {
				done <- err
				return
			}
		}
		_, err := h.UpdateTwin(context.Background(), Identity{DeviceID: other}, []byte(`{"tags":{"a":1}}`), "", false)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("twin writes stalled behind a device that does not read")
	}
}

func stripe(id string) uint32 {
	f := fnv.New32a()
	f.Write([]byte(id))
	return f.Sum32() % 64
}

// failingSession is a connection that is already gone: writes fail. tried,
// when set, hears of each attempt.
type failingSession struct {
	methodSession
	tried chan struct{}
}

func (s *failingSession) SendMethod(string, string, []byte) error {
	if s.tried != nil {
		select {
		case s.tried <- struct{}{}:
		default:
		}
	}
	return errors.New("closed")
}

// TestInvokeMethodWaitsPastAFailedSend: a request that cannot be written
// (the connection went away under it) waits, within connectTimeout, for
// the device's next connection instead of failing at once.
func TestInvokeMethodWaitsPastAFailedSend(t *testing.T) {
	h := newRegHub(t)
	id := Identity{DeviceID: "flaky"}
	regDevice(t, h, Device{DeviceID: "flaky"})
	dead := &failingSession{tried: make(chan struct{}, 1)}
	c := h.Connect(id, dead, ConnectInfo{AuthMethod: "sas"})
	c.SubscribeMethods()
	go func() {
		<-dead.tried // the request failed on the old connection; now a new one comes
		connectMethods(t, h, id, &methodSession{answer: func(c *Conn, rid string) { c.ResolveMethod(rid, 200, []byte(`"new"`)) }})
	}()
	res, err := h.InvokeMethod(context.Background(), id, MethodRequest{Name: "m", ResponseTimeout: MinResponseTimeout, ConnectTimeout: 5 * time.Second})
	if err != nil || string(res.Payload) != `"new"` {
		t.Fatalf("got %s, %v; want the new connection's answer", res.Payload, err)
	}
	// Without a connect timeout the device must be ready now: 404103 at once.
	c2 := h.Connect(id, dead, ConnectInfo{AuthMethod: "sas"})
	c2.SubscribeMethods()
	defer c2.Disconnect()
	if _, err := h.InvokeMethod(context.Background(), id, MethodRequest{Name: "m", ResponseTimeout: MinResponseTimeout}); !errors.Is(err, huberr.DeviceNotOnline(0)) {
		t.Fatalf("got %v, want 404103", err)
	}
}
