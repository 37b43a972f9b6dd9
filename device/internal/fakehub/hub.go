// SPDX-License-Identifier: MIT

// Package fakehub is a stand-in for Azure IoT Hub's MQTT device surface,
// for testing the device client over real sockets without the emulator.
// It embeds a mochi-mqtt broker with a TLS listener and a WSS listener on
// /$iothub/websocket, both on 127.0.0.1, records every CONNECT, SUBSCRIBE
// and PUBLISH (and counts PUBACKs), and plays the hub's side with an inline client: it answers
// twin GET and reported PATCH requests, invokes methods, sends desired
// patches and cloud-to-device messages, and can drop connections.
//
// It checks no credentials and enforces no topic rules; tests assert on
// what it recorded instead.
package fakehub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/testutil"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// WaitTimeout bounds every Wait helper.
const WaitTimeout = 10 * time.Second

// Connect is a recorded CONNECT packet.
type Connect struct {
	ClientID        string
	Username        string
	Password        string
	UsernameFlag    bool
	PasswordFlag    bool
	Clean           bool
	Keepalive       uint16
	ProtocolName    string
	ProtocolVersion byte
	Listener        string // "tls" or "wss"
	PeerCommonName  string // subject CN of the client certificate, "" without one
	Accepted        bool
}

// Subscription is a recorded SUBSCRIBE filter.
type Subscription struct {
	ClientID string
	Conn     int // index into Connects of the connection that subscribed
	Filter   string
	QoS      byte
}

// Publish is a recorded PUBLISH from a device.
type Publish struct {
	ClientID string
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
}

// WSHandshake is a recorded WebSocket upgrade request.
type WSHandshake struct {
	Path         string
	Subprotocols []string
}

// TwinRequest is a device's twin request as a TwinHook sees it.
type TwinRequest struct {
	ClientID string
	Verb     string // GET or PATCH
	Resource string // "/" or "/properties/reported/"
	RID      string
	Body     []byte
}

// TwinReply is a TwinHook's answer.
type TwinReply struct {
	Status  int
	Version int64 // sent as &$version= when not 0
	Body    []byte
	Silent  bool // send nothing
}

// Hub is the fake hub. Its methods are safe for concurrent use.
type Hub struct {
	TLSAddr string       // host:port of the MQTT over TLS listener
	WSAddr  string       // host:port of the MQTT over WSS listener
	CA      *testutil.CA // issued the server certificate; trust it in clients

	srv *mqtt.Server
	wg  sync.WaitGroup // goroutines answering devices

	mu             sync.Mutex
	changed        chan struct{} // closed and replaced on every recorded event
	connects       []Connect
	lastConn       map[string]int // client id -> index into connects
	subs           []Subscription
	publishes      []Publish
	disconnects    int
	wsHandshakes   []WSHandshake
	auth           func(Connect) bool
	unavailable    bool
	acks           map[string]int // client id -> QoS 1 deliveries it acknowledged
	twinHook       func(TwinRequest) (TwinReply, bool)
	dropOnPublish  []string
	methodWait     map[string]chan MethodResult
	nextRID        int
	desired        map[string]any
	reported       map[string]any
	desiredVersion int64
	reportVersion  int64
}

// MethodResult is a device's answer to InvokeMethod.
type MethodResult struct {
	Status  int
	Payload []byte
}

// Start starts a hub and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Hub {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatalf("fakehub: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// New starts a hub; Close stops it.
func New() (*Hub, error) {
	ca := testutil.FixedCA()
	cert, err := ca.Issue("fakehub", "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool,
	}
	h := &Hub{
		CA:             ca,
		changed:        make(chan struct{}),
		lastConn:       map[string]int{},
		acks:           map[string]int{},
		methodWait:     map[string]chan MethodResult{},
		desired:        map[string]any{},
		reported:       map[string]any{},
		desiredVersion: 1,
		reportVersion:  1,
	}
	h.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	// The only hook: mochi accepts a CONNECT if any hook says yes.
	if err := h.srv.AddHook(&hook{hub: h}, nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: cfg})
	if err := h.srv.AddListener(tcp); err != nil {
		return nil, err
	}
	ws := &wsListener{id: "wss", hub: h, cfg: cfg}
	if err := h.srv.AddListener(ws); err != nil {
		_ = h.srv.Close()
		return nil, err
	}
	if err := h.srv.Serve(); err != nil {
		_ = h.srv.Close()
		return nil, err
	}
	h.TLSAddr, h.WSAddr = tcp.Address(), ws.Address()
	return h, nil
}

// Close stops the broker and waits for the hub's goroutines.
func (h *Hub) Close() {
	_ = h.srv.Close()
	h.wg.Wait()
}

// record runs f under the hub's lock and wakes waiters.
func (h *Hub) record(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
	close(h.changed)
	h.changed = make(chan struct{})
}

// waitFor waits until cond, evaluated under the hub's lock, holds.
func (h *Hub) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok, ch := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fakehub: timed out after %v waiting for %s", WaitTimeout, what)
		}
	}
}

// SetAuth makes f decide on each CONNECT; nil accepts all (the default).
// A refusal is CONNACK 4 (mochi's code for MQTT 3.1.1 auth failures).
func (h *Hub) SetAuth(f func(Connect) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.auth = f
}

// SetServerUnavailable makes the hub answer every CONNECT with CONNACK 3
// (server unavailable), as the hub does when it is throttling or down,
// until called with false. Unlike a refusal by SetAuth, a client retries
// this one.
func (h *Hub) SetServerUnavailable(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unavailable = on
}

// WaitAcks waits until clientID has acknowledged at least n QoS 1 messages
// from the hub (cloud-to-device messages) over all its connections.
func (h *Hub) WaitAcks(t testing.TB, clientID string, n int) {
	t.Helper()
	h.waitFor(t, fmt.Sprintf("%d acknowledgements from %s", n, clientID), func() bool { return h.acks[clientID] >= n })
}

// SetTwinHook lets f answer twin requests; when it returns false the hub's
// default behaviour applies (GET returns the twin, PATCH merges reported).
func (h *Hub) SetTwinHook(f func(TwinRequest) (TwinReply, bool)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.twinHook = f
}

// DropOnPublish makes the hub close the connection of the next device that
// publishes on a topic starting with prefix, without acknowledging it.
func (h *Hub) DropOnPublish(prefix string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropOnPublish = append(h.dropOnPublish, prefix)
}

// Connects returns the recorded CONNECT packets.
func (h *Hub) Connects() []Connect {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Connect(nil), h.connects...)
}

// WaitConnects waits until at least n CONNECTs were accepted and returns
// all recorded CONNECTs.
func (h *Hub) WaitConnects(t testing.TB, n int) []Connect {
	t.Helper()
	h.waitFor(t, fmt.Sprintf("%d accepted connects", n), func() bool {
		k := 0
		for _, c := range h.connects {
			if c.Accepted {
				k++
			}
		}
		return k >= n
	})
	return h.Connects()
}

// WaitDisconnects waits until at least n connections ended.
func (h *Hub) WaitDisconnects(t testing.TB, n int) {
	t.Helper()
	h.waitFor(t, fmt.Sprintf("%d disconnects", n), func() bool { return h.disconnects >= n })
}

// Subscriptions returns the filters subscribed on clientID's latest
// connection, with their requested QoS.
func (h *Hub) Subscriptions(clientID string) map[string]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subscriptionsLocked(clientID)
}

func (h *Hub) subscriptionsLocked(clientID string) map[string]byte {
	m := map[string]byte{}
	conn, ok := h.lastConn[clientID]
	if !ok {
		return m
	}
	for _, s := range h.subs {
		if s.ClientID == clientID && s.Conn == conn {
			m[s.Filter] = s.QoS
		}
	}
	return m
}

// WaitSubscribed waits until clientID's latest connection has subscribed
// to filter.
func (h *Hub) WaitSubscribed(t testing.TB, clientID, filter string) {
	t.Helper()
	h.waitFor(t, clientID+" subscribed to "+filter, func() bool {
		_, ok := h.subscriptionsLocked(clientID)[filter]
		return ok
	})
}

// Publishes returns the recorded device publishes whose topic starts with
// prefix.
func (h *Hub) Publishes(prefix string) []Publish {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.publishesLocked(prefix)
}

func (h *Hub) publishesLocked(prefix string) []Publish {
	var out []Publish
	for _, p := range h.publishes {
		if strings.HasPrefix(p.Topic, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// WaitPublishes waits until at least n device publishes start with prefix
// and returns them.
func (h *Hub) WaitPublishes(t testing.TB, prefix string, n int) []Publish {
	t.Helper()
	h.waitFor(t, fmt.Sprintf("%d publishes on %s", n, prefix), func() bool {
		return len(h.publishesLocked(prefix)) >= n
	})
	return h.Publishes(prefix)
}

// WSHandshakes returns the recorded WebSocket upgrade requests.
func (h *Hub) WSHandshakes() []WSHandshake {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]WSHandshake(nil), h.wsHandshakes...)
}

// Drop closes clientID's network connection without a word, as the hub does
// on errors (MQTT 3.1.1 has no server DISCONNECT).
func (h *Hub) Drop(clientID string) error {
	cl, ok := h.srv.Clients.Get(clientID)
	if !ok {
		return fmt.Errorf("fakehub: no client %q", clientID)
	}
	cl.Stop(errors.New("fakehub: dropped"))
	return nil
}

// SendC2D publishes a cloud-to-device message to deviceID at QoS 1 on
// devices/{id}/messages/devicebound/{bag}.
func (h *Hub) SendC2D(deviceID, bag string, body []byte) error {
	return h.srv.Publish("devices/"+deviceID+"/messages/devicebound/"+bag, body, false, 1)
}

// SendDesired publishes a desired-properties patch on
// $iothub/twin/PATCH/properties/desired/?$version={n}, adding "$version" to
// the JSON object patch, and bumps the stored desired version to n.
func (h *Hub) SendDesired(patch map[string]any, version int64) error {
	body := map[string]any{"$version": version}
	h.mu.Lock()
	for k, v := range patch {
		body[k] = v
		if v == nil {
			delete(h.desired, k)
		} else {
			h.desired[k] = v
		}
	}
	h.desiredVersion = version
	h.mu.Unlock()
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return h.srv.Publish("$iothub/twin/PATCH/properties/desired/?$version="+strconv.FormatInt(version, 10), b, false, 0)
}

// SetTwin replaces the stored twin sections and versions.
func (h *Hub) SetTwin(desired, reported map[string]any, desiredVersion, reportedVersion int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.desired, h.reported = desired, reported
	h.desiredVersion, h.reportVersion = desiredVersion, reportedVersion
}

// Reported returns a copy of the stored reported properties and version.
func (h *Hub) Reported() (map[string]any, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]any{}
	for k, v := range h.reported {
		m[k] = v
	}
	return m, h.reportVersion
}

// InvokeMethod publishes $iothub/methods/POST/{name}/?$rid={rid} (QoS 0)
// and waits for the device's response, failing t after WaitTimeout.
func (h *Hub) InvokeMethod(t testing.TB, name string, payload []byte) MethodResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	r, err := h.Invoke(ctx, name, payload)
	if err != nil {
		t.Fatalf("fakehub: %v", err)
	}
	return r
}

// Invoke is InvokeMethod for goroutines other than the test's: it reports
// failure, including ctx ending first, as an error.
func (h *Hub) Invoke(ctx context.Context, name string, payload []byte) (MethodResult, error) {
	h.mu.Lock()
	h.nextRID++
	rid := strconv.FormatInt(int64(h.nextRID), 16)
	ch := make(chan MethodResult, 1)
	h.methodWait[rid] = ch
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.methodWait, rid)
		h.mu.Unlock()
	}()
	if err := h.srv.Publish("$iothub/methods/POST/"+name+"/?$rid="+rid, payload, false, 0); err != nil {
		return MethodResult{}, fmt.Errorf("invoke %s: %w", name, err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return MethodResult{}, fmt.Errorf("no response to method %s (rid %s): %w", name, rid, ctx.Err())
	}
}
