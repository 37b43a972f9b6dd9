// SPDX-License-Identifier: MIT

package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/internal/wire"
	"github.com/iothubemulator/iothub/internal/wsconn"
)

// The device API over MQTT (DPS documentation "MQTT support"; Node
// azure-iot-provisioning-device-mqtt, azure-sdk-for-c
// az_iot_provisioning_client.c).
const (
	topicResponses = "$dps/registrations/res/#"
	prefixResponse = "$dps/registrations/res/"
	topicRegister  = "$dps/registrations/PUT/iotdps-register/?$rid="
	topicStatus    = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
)

// mqttTransport is one MQTT connection for one registration: CONNECT with
// client id {registrationId} and username
// {idScope}/registrations/{registrationId}/api-version=...&ClientVersion=...,
// SUBSCRIBE to the response topic, then a PUBLISH per request whose answer
// comes back on $dps/registrations/res/{status}/?$rid={rid}[&retry-after=n].
type mqttTransport struct {
	c  *Client
	pc mqtt.Client

	mu      sync.Mutex
	waiting map[string]chan *answer // by $rid
	lost    chan struct{}           // closed when the connection ends
	lostErr error
	once    sync.Once
}

func newMQTTTransport(c *Client) *mqttTransport {
	return &mqttTransport{c: c, waiting: map[string]chan *answer{}, lost: make(chan struct{})}
}

// username is the CONNECT username the SDKs send; the user agent is
// escaped as Node's encodeURIComponent does.
func (t *mqttTransport) username() string {
	return t.c.idScope + "/registrations/" + t.c.registrationID + "/api-version=" + APIVersion + "&ClientVersion=" + wire.Escape(t.c.userAgent())
}

func (t *mqttTransport) end(err error) {
	t.once.Do(func() {
		t.lostErr = err
		close(t.lost)
	})
}

// connect dials, authenticates and subscribes, unless already connected.
func (t *mqttTransport) connect(ctx context.Context) error {
	if t.pc != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.c.set.requestTimeout)
	defer cancel()
	ws := t.c.set.transport == MQTTWebSockets
	port := "8883"
	if ws {
		port = "443"
	}
	addr, serverName := t.c.address(port)
	password, err := t.c.token()
	if err != nil {
		return fmt.Errorf("provisioning: token: %w", err)
	}
	scheme := "ssl"
	if ws {
		scheme = "wss"
	}
	opts := mqtt.NewClientOptions().
		AddBroker(scheme + "://" + addr).
		SetClientID(t.c.registrationID).
		SetUsername(t.username()).
		SetPassword(password).
		SetCleanSession(true).
		SetProtocolVersion(4).
		SetKeepAlive(t.c.set.keepAlive).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(t.c.set.requestTimeout).
		// In order: an answer reaches its request before the PUBACK that
		// follows it, and before the close that may follow both (the
		// service closes a connection whose device it refused).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { t.dispatch(m.Topic(), m.Payload()) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { t.end(err) }).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			return t.open(ctx, ws, addr, serverName)
		})
	pc := mqtt.NewClient(opts)
	tok := pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("provisioning: connect: %w", ctx.Err())
	}
	if err := tok.Error(); err != nil {
		if ct, ok := tok.(*mqtt.ConnectToken); ok && ct.ReturnCode() > 0 && ct.ReturnCode() < 6 {
			return connackError(ct.ReturnCode(), err)
		}
		return fmt.Errorf("provisioning: connect: %w", err)
	}
	t.pc = pc
	sub := pc.Subscribe(topicResponses, 1, nil)
	select {
	case <-sub.Done():
	case <-ctx.Done():
		return fmt.Errorf("provisioning: subscribe: %w", ctx.Err())
	}
	if err := sub.Error(); err != nil {
		return fmt.Errorf("provisioning: subscribe: %w", err)
	}
	if st, ok := sub.(*mqtt.SubscribeToken); ok && st.Result()[topicResponses] >= 0x80 {
		return errors.New("provisioning: the service refused the subscription to " + topicResponses)
	}
	return nil
}

// open opens TLS to addr, or a WebSocket to wss://addr/$iothub/websocket
// with subprotocol "mqtt" (Node MqttWs).
func (t *mqttTransport) open(ctx context.Context, ws bool, addr, serverName string) (net.Conn, error) {
	cfg := t.c.tlsConfig(serverName)
	if !ws {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg, Subprotocols: []string{"mqtt"}}
	conn, resp, err := d.DialContext(ctx, "wss://"+addr+"/$iothub/websocket", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	return wsconn.New(conn), nil
}

// dispatch hands a response to the request waiting for its $rid.
func (t *mqttTransport) dispatch(topic string, payload []byte) {
	a, rid, ok := parseResponseTopic(topic)
	if !ok {
		t.c.log.Debug("provisioning: ignoring a message on an unexpected topic", "topic", topic)
		return
	}
	a.body = append([]byte(nil), payload...)
	t.mu.Lock()
	ch := t.waiting[rid]
	delete(t.waiting, rid)
	t.mu.Unlock()
	if ch != nil {
		ch <- a
	}
}

// parseResponseTopic reads $dps/registrations/res/{status}/?$rid={rid}[&retry-after={n}].
func parseResponseTopic(topic string) (a *answer, rid string, ok bool) {
	rest, ok := strings.CutPrefix(topic, prefixResponse)
	if !ok {
		return nil, "", false
	}
	status, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return nil, "", false
	}
	code, err := strconv.Atoi(status)
	if err != nil {
		return nil, "", false
	}
	a = &answer{status: code}
	for item := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(item, "=")
		switch wire.Unescape(k) {
		case "$rid":
			rid = v
		case "retry-after":
			a.retryAfter = parseRetryAfter(v)
		}
	}
	return a, rid, rid != ""
}

func (t *mqttTransport) register(ctx context.Context, body []byte) (*answer, error) {
	return t.request(ctx, "Register", topicRegister, "", body)
}

func (t *mqttTransport) status(ctx context.Context, operationID string) (*answer, error) {
	return t.request(ctx, "OperationStatus", topicStatus, "&operationId="+operationID, nil)
}

// request publishes one request at QoS 1 and waits for its answer.
func (t *mqttTransport) request(ctx context.Context, op, prefix, suffix string, body []byte) (*answer, error) {
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.c.set.requestTimeout)
	defer cancel()
	rid := newRID()
	ch := make(chan *answer, 1)
	t.mu.Lock()
	t.waiting[rid] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiting, rid)
		t.mu.Unlock()
	}()
	pub := t.pc.Publish(prefix+rid+suffix, 1, false, body)
	select {
	case <-pub.Done():
		if err := pub.Error(); err != nil {
			return nil, fmt.Errorf("provisioning: %s: publish: %w", op, err)
		}
	case <-t.lost:
		select {
		case a := <-ch:
			return a, nil
		default:
		}
		return nil, fmt.Errorf("provisioning: %s: connection lost: %v", op, t.lostErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("provisioning: %s: %w", op, ctx.Err())
	}
	select {
	case a := <-ch:
		return a, nil
	case <-t.lost:
		select {
		case a := <-ch: // answered, then closed
			return a, nil
		default:
		}
		return nil, fmt.Errorf("provisioning: %s: connection lost: %v", op, t.lostErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("provisioning: %s: no answer: %w", op, ctx.Err())
	}
}

func (t *mqttTransport) close() {
	if t.pc != nil {
		t.pc.Disconnect(250)
	}
	t.end(errors.New("closed"))
}

// newRID returns a request id; the SDKs use UUIDs or counters, the service
// echoes whatever it is given.
func newRID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
