// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// pendingConnects opens n TLS connections that each send the start of a
// CONNECT claiming claim bytes of remaining length and then nothing more,
// as a peer that never authenticates would, and waits for the server to
// read what was sent. The caller closes the connections.
func pendingConnects(tb testing.TB, e *env, n, claim int) []net.Conn {
	tb.Helper()
	head := append(appendLength([]byte{0x10}, claim), "\x00\x04MQTT\x04\x02\x00"...)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := tls.Dial("tcp", e.srv.Addr().String(), &tls.Config{RootCAs: e.roots, ServerName: hostName})
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(head); err != nil {
			tb.Fatal(err)
		}
	}
	// Let the server read what was sent (a measurement, not a check).
	time.Sleep(300 * time.Millisecond)
	return conns
}

// pendingHeap measures the live heap that n pending connections (see
// pendingConnects) make the server hold: the heap while they are open,
// less the heap once the server has dropped them at its pre-CONNECT
// deadline while this process still holds its own (client) ends. It
// returns the server's bytes per pending connection and the heap growth
// per connection left after both ends are gone.
func pendingHeap(tb testing.TB, e *env, n, claim int) (server, after float64) {
	tb.Helper()
	base := liveHeap()
	conns := pendingConnects(tb, e, n, claim)
	open := liveHeap()
	eventually(tb, "the server drops the pending connections", func() bool {
		e.srv.connMu.Lock()
		defer e.srv.connMu.Unlock()
		return len(e.srv.conns) == 0
	})
	clientOnly := liveHeap()
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	gone := liveHeap()
	return (float64(open) - float64(clientOnly)) / float64(n), (float64(gone) - float64(base)) / float64(n)
}

// TestPendingConnectHoldsLittle: a peer that claims a large CONNECT and
// sends a few bytes of it makes the server hold what it sent, not what it
// claimed, and only until the pre-CONNECT deadline, which closes the
// connection without a CONNACK.
func TestPendingConnectHoldsLittle(t *testing.T) {
	e := newEnvWith(t, func(s *Server) { s.connectTimeout = 4 * time.Second })
	conns := pendingConnects(t, e, 1, maxConnectSize)
	if got := readUntilClosed(t, conns[0]); len(got) != 0 {
		t.Fatalf("got % x, want the connection closed without a CONNACK at the pre-CONNECT deadline", got)
	}
	_ = conns[0].Close()
	const n, claim = 100, maxConnectSize
	server, after := pendingHeap(t, e, n, claim)
	t.Logf("live heap per pending connection claiming %d bytes: %.0f bytes on the server; %.0f bytes left after", claim, server, after)
	// Before, each held the whole claim; now about 8 KB of TLS state. A
	// quarter of the claim lies between them with room for noise.
	if server > claim/4 {
		t.Errorf("the server holds %.0f bytes per pending connection; want well below the %d bytes claimed", server, claim)
	}
}

// BenchmarkPendingConnectHeap reports the live heap the server holds per
// unauthenticated connection that sent the start of a CONNECT claiming
// claim-* bytes (heapB/pending-conn), and the heap growth per connection
// left once they are gone (heapB/conn-after; flat means about 0). Run
// with -benchtime=1x:
//
//	go test -run '^$' -bench PendingConnectHeap -benchtime=1x ./emulator/internal/mqttapi
func BenchmarkPendingConnectHeap(b *testing.B) {
	for _, claim := range []int{1024, maxConnectSize, 300 * 1024} {
		b.Run("claim-"+strconv.Itoa(claim/1024)+"KiB", func(b *testing.B) {
			for range b.N {
				e := newEnvWith(b, func(s *Server) { s.connectTimeout = 5 * time.Second })
				server, after := pendingHeap(b, e, 500, claim)
				b.ReportMetric(server, "heapB/pending-conn")
				b.ReportMetric(after, "heapB/conn-after")
			}
		})
	}
}

// lifecycle runs one device's life over a real connection: create it,
// connect with CleanSession=0, subscribe to methods, desired updates and
// twin responses, disconnect, delete it, and wait until the broker has
// freed its session.
func lifecycle(tb testing.TB, e *env, deviceID string) {
	tb.Helper()
	id := hub.Identity{DeviceID: deviceID}
	key := e.addDevice(tb, deviceID)
	c, err := tls.Dial("tcp", e.srv.Addr().String(), &tls.Config{RootCAs: e.roots, ServerName: hostName})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTime))
	connect := rawConnect{flags: flagUsername | flagPassword, clientID: deviceID, user: username(deviceID), pass: token(tb, id, "", key, farFuture())}
	var sub bytes.Buffer
	pk := packets.Packet{ProtocolVersion: 4, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filterMethods}, {Filter: filterDesired}, {Filter: filterTwinResponses}}}
	if err := pk.SubscribeEncode(&sub); err != nil {
		tb.Fatal(err)
	}
	for _, step := range []struct {
		send []byte
		want int // bytes of the answer
	}{{connect.bytes(), 4}, {sub.Bytes(), 7}, {[]byte{0xe0, 0}, 0}} {
		if _, err := c.Write(step.send); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, step.want)); err != nil {
			tb.Fatal(err)
		}
	}
	eventually(tb, "disconnected", func() bool { return !e.hub.IsConnected(id) })
	if err := e.hub.DeleteDevice(context.Background(), deviceID, "*"); err != nil {
		tb.Fatal(err)
	}
	eventually(tb, "the session freed", func() bool { _, ok := e.srv.mochi.Clients.Get(deviceID); return !ok })
}

// BenchmarkDeviceLifecycleHeap reports the live heap growth per device
// created, connected with CleanSession=0, subscribed, disconnected and
// deleted (heapB/cycle); flat means about 0. Run with -benchtime=1x:
//
//	go test -run '^$' -bench DeviceLifecycleHeap -benchtime=1x ./emulator/internal/mqttapi
func BenchmarkDeviceLifecycleHeap(b *testing.B) {
	const warm, cycles = 50, 1000
	for range b.N {
		e := newEnv(b)
		for i := range warm {
			lifecycle(b, e, "warm-"+strconv.Itoa(i))
		}
		base := liveHeap()
		for i := range cycles {
			lifecycle(b, e, "dev-"+strconv.Itoa(i))
		}
		b.ReportMetric((float64(liveHeap())-float64(base))/cycles, "heapB/cycle")
	}
}
