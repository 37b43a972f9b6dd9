// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/internal/testutil"
)

// orderHook records the hook calls mochi makes for SUBSCRIBE packets.
type orderHook struct {
	mqtt.HookBase
	mu    sync.Mutex
	calls []string
}

func (h *orderHook) ID() string { return "order" }

func (h *orderHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPacketProcessed}, []byte{b})
}

func (h *orderHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *orderHook) OnACLCheck(_ *mqtt.Client, topic string, _ bool) bool {
	return !strings.HasPrefix(topic, "denied/")
}

func (h *orderHook) record(s string) {
	h.mu.Lock()
	h.calls = append(h.calls, s)
	h.mu.Unlock()
}

func (h *orderHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	h.record("OnSubscribe")
	return pk
}

func (h *orderHook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) { h.record("OnSubscribed") }

func (h *orderHook) OnPacketProcessed(_ *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Subscribe {
		h.record("OnPacketProcessed")
	}
}

func (h *orderHook) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.calls
	h.calls = nil
	return out
}

// TestMochiSubscribeHookOrder pins what the session's sendMu relies on
// (hook.OnSubscribe locks it, hook.OnPacketProcessed unlocks it): for every
// SUBSCRIBE that reaches OnSubscribe, mochi calls OnSubscribed and then
// OnPacketProcessed, whatever the outcome of its filters, and a SUBSCRIBE
// it refuses before OnSubscribe reaches neither. If a mochi upgrade changes
// this, sends to a device would block for ever after its SUBSCRIBE.
func TestMochiSubscribeHookOrder(t *testing.T) {
	h := &orderHook{}
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: testLogger()})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	write := func(pk packets.Packet) {
		t.Helper()
		var buf bytes.Buffer
		var err error
		switch pk.FixedHeader.Type {
		case packets.Connect:
			err = pk.ConnectEncode(&buf)
		case packets.Subscribe:
			err = pk.SubscribeEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	readType := func() byte {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		first, err := r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		n, mul := 0, 1
		for {
			b, err := r.ReadByte()
			if err != nil {
				t.Fatal(err)
			}
			n += int(b&127) * mul
			if b&128 == 0 {
				break
			}
			mul *= 128
		}
		if _, err := r.Discard(n); err != nil {
			t.Fatal(err)
		}
		return first >> 4
	}
	write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "order"}})
	if typ := readType(); typ != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", typ)
	}
	for _, tc := range []struct {
		name    string
		filters []string
	}{
		{"granted", []string{"ok/topic"}},
		{"refused by the ACL", []string{"denied/topic"}},
		{"an invalid filter", []string{"a/#/b"}},
		{"granted and refused together", []string{"ok/a", "denied/b", "x/+/#"}},
	} {
		var subs packets.Subscriptions
		for _, f := range tc.filters {
			subs = append(subs, packets.Subscription{Filter: f, Qos: 1})
		}
		write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 7, Filters: subs})
		if typ := readType(); typ != packets.Suback {
			t.Fatalf("%s: got packet type %d, want SUBACK", tc.name, typ)
		}
		var got []string
		testutil.Eventually(t, tc.name+": the SUBSCRIBE to be processed", func() bool {
			got = append(got, h.take()...)
			return len(got) >= 3
		})
		if want := []string{"OnSubscribe", "OnSubscribed", "OnPacketProcessed"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: hook calls %v, want %v", tc.name, got, want)
		}
	}
}
