// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// rawDevice is an MQTT connection driven by hand, so that it can stop
// reading, which paho cannot. Its receive buffer is made small so that
// the server's writes fill the window soon.
type rawDevice struct {
	net.Conn // a TLS connection, or a WebSocket seen as a byte stream
}

// rawReceiveBuffer is the device's socket receive buffer.
const rawReceiveBuffer = 4096

// dialRaw opens a TLS or WebSocket connection to the server.
func (e *env) dialRaw(t *testing.T, ws bool) *rawDevice {
	t.Helper()
	return e.dialRawCert(t, ws, nil)
}

// dialRawCert is dialRaw presenting a client certificate, if cert is not nil.
func (e *env) dialRawCert(t *testing.T, ws bool, cert *tls.Certificate) *rawDevice {
	t.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: waitTime}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.(*net.TCPConn).SetReadBuffer(rawReceiveBuffer); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}
	tc := &tls.Config{RootCAs: e.roots, ServerName: hostName}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	var conn net.Conn
	if ws {
		d := &websocket.Dialer{TLSClientConfig: tc, HandshakeTimeout: waitTime, Subprotocols: []string{"mqtt"}, NetDialContext: dial}
		c, _, err := d.Dial(e.wsURL(), nil)
		if err != nil {
			t.Fatalf("websocket dial: %v", err)
		}
		conn = &wsConn{ws: c}
	} else {
		c, err := dial(context.Background(), "tcp", e.srv.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn = tls.Client(c, tc)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawDevice{conn}
}

// send writes one packet encoded by mochi's encoders.
func (d *rawDevice) send(pk packets.Packet) error {
	pk.ProtocolVersion = 4
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&b)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&b)
	case packets.Publish:
		err = pk.PublishEncode(&b)
	default:
		err = fmt.Errorf("no encoder for packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_, err = d.Write(b.Bytes())
	return err
}

// expect reads one packet and fails unless it is exactly want.
func (d *rawDevice) expect(t *testing.T, what string, want []byte) {
	t.Helper()
	_ = d.SetReadDeadline(time.Now().Add(waitTime))
	defer func() { _ = d.SetReadDeadline(time.Time{}) }()
	head := make([]byte, 2) // every packet expected here has a remaining length below 128
	if _, err := io.ReadFull(d, head); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got := append(head, make([]byte, head[1])...)
	if _, err := io.ReadFull(d, got[2:]); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got % x, want % x", what, got, want)
	}
}

// connectAndSubscribe authenticates as id with keep-alive 0 (the hub's
// 1767 s cap, so keep-alive cannot end the connection during the test) and
// a will of "gone" on its telemetry topic, and subscribes to filter.
func (d *rawDevice) connectAndSubscribe(t *testing.T, id hub.Identity, password, filter string) {
	t.Helper()
	err := d.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id.String(),
			UsernameFlag: true, Username: []byte(username(id.String())),
			PasswordFlag: true, Password: []byte(password),
			WillFlag: true, WillTopic: "devices/" + id.DeviceID + "/messages/events/", WillPayload: []byte("gone"),
		},
	})
	if err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	d.expect(t, "CONNACK", []byte{0x20, 2, 0, 0})
	err = d.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: filter}},
	})
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	d.expect(t, "SUBACK", []byte{0x90, 3, 0, 1, 0})
}

// stuckWriteTimeout replaces writeTimeout in TestStuckDeviceIsDropped.
const stuckWriteTimeout = 2 * time.Second

// maxStuckPatches bounds the desired patches pushed to the stuck device,
// about 48 MB: more than the kernel buffers on a connection (on Linux the
// send buffer grows to tcp_wmem's maximum, 4 MB by default). Each patch is
// pushed once the previous one is written, so the hub never has more than
// one queued for the device and it is the adapter's write deadline, not
// the hub's queue limit, that drops the device.
const maxStuckPatches = 2000

// bigDesiredPatch is a desired patch of about 24 KB whose values change with n.
func bigDesiredPatch(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"properties":{"desired":{`)
	for k := range 6 {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"%d%s"`, k, n, strings.Repeat("x", 3900))
	}
	b.WriteString(`}}}`)
	return []byte(b.String())
}

// TestStuckDeviceIsDropped checks that a device that stops reading is
// dropped once a write to it has waited the write timeout, although it
// keeps sending, and that meanwhile other devices are served at once.
func TestStuckDeviceIsDropped(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "wss"}[ws], func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, func(s *Server) { s.writeTimeout = stuckWriteTimeout })
			stuck := hub.Identity{DeviceID: "stuck"}
			key := e.addDevice(t, stuck.DeviceID)
			a := e.dialRaw(t, ws)
			a.connectAndSubscribe(t, stuck, token(t, stuck, "", key, farFuture()), filterDesired)
			// From here on, a reads nothing.
			healthy := hub.Identity{DeviceID: "healthy"}
			b := e.connectDevice(t, healthy.DeviceID, ws)
			b.subscribe(t, filterMethods, filterTwinResponses)

			// Push patches until one is not written out: the server's
			// byte count stops moving while a notification is due.
			sent := func() int64 { return atomic.LoadInt64(&e.srv.mochi.Info.BytesSent) }
			stalled := false
			for n := 0; n < maxStuckPatches && !stalled; n++ {
				before := sent()
				if _, err := e.hub.UpdateTwin(context.Background(), stuck, bigDesiredPatch(n), "*", false); err != nil {
					t.Fatalf("patch %d: %v", n, err)
				}
				stalled = !within(500*time.Millisecond, func() bool { return sent() > before })
			}
			if !stalled {
				t.Fatalf("%d patches written (%d bytes) to a device that reads nothing; want a write to block", maxStuckPatches, sent())
			}

			// The device keeps publishing, which used to push the deadline back.
			var wg sync.WaitGroup
			stop := make(chan struct{})
			defer func() { close(stop); wg.Wait() }()
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "devices/stuck/messages/events/", Payload: []byte("alive")}
					if a.send(pk) != nil {
						return
					}
				}
			})

			// The healthy device is served while the stuck one's write waits.
			done := invoke(e, healthy, hub.MethodRequest{Name: "ping"})
			m := b.next(t)
			b.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, "{}")
			if o := <-done; o.err != nil || o.res.Status != 200 {
				t.Fatalf("method to the healthy device: got %+v, %v; want 200", o.res, o.err)
			}
			b.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=1", 1, `{"ok":true}`)
			if r := b.twinReply(t); r.Status != "204" || r.RID != "1" {
				t.Fatalf("twin PATCH of the healthy device: got %+v, want 204 for rid 1", r)
			}
			if !e.hub.IsConnected(stuck) {
				t.Fatal("the stuck device was dropped before the healthy device's calls returned; want them served while its write was blocked")
			}

			// The blocked write began before the stall was seen: the write
			// timeout plus a margin for the teardown bounds the rest. A close
			// that waits on the peer (a TLS close_notify) would overrun it.
			if !within(stuckWriteTimeout+3*time.Second, func() bool { return !e.hub.IsConnected(stuck) }) {
				t.Fatalf("the stuck device is still connected %v after its write blocked; want it dropped after the %v write timeout", stuckWriteTimeout+3*time.Second, stuckWriteTimeout)
			}
			if !e.hub.IsConnected(healthy) || !b.IsConnectionOpen() {
				t.Error("the healthy device lost its connection")
			}
			// Dropped like a failed network: the will is forwarded.
			eventually(t, "the stuck device's will recorded", func() bool {
				msgs, _ := e.hub.Telemetry(stuck.DeviceID, "", 0, 0)
				for _, m := range msgs {
					if m.Properties[propMessageType] == "Will" && string(m.Body) == "gone" {
						return true
					}
				}
				return false
			})
			// The device sees its connection end (after what was buffered).
			_ = a.SetReadDeadline(time.Now().Add(waitTime))
			_, err := io.Copy(io.Discard, a)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("the stuck device's connection is still open: %v", err)
			}
		})
	}
}

// within polls cond until it holds (true) or d passes (false).
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
