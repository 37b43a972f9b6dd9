// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/internal/wire"
	"github.com/iothubemulator/iothub/internal/wsconn"
)

// disconnectQuiesce is how long a DISCONNECT may take to go out, in ms.
const disconnectQuiesce = 250

// errRenewing ends a session that is replaced to refresh its credentials.
var errRenewing = errors.New("device: reconnecting to renew credentials")

// session is one MQTT connection. A new one is made for every
// (re)connection, with the credentials of that moment.
type session struct {
	pc     mqtt.Client
	lost   chan struct{} // closed when the connection ends, for any reason
	once   sync.Once
	err    error     // why it ended; written before lost is closed
	token  string    // the password it connected with; "" for X.509
	expiry time.Time // password expiry; zero for X.509 or a token without se
	asked  bool      // the application was asked for a new token; supervisor only

	mu         sync.Mutex
	subscribed map[string]bool
}

func newSession() *session {
	return &session{lost: make(chan struct{}), subscribed: map[string]bool{}}
}

// end marks the session over; the first reason wins.
func (s *session) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.lost)
	})
}

func (s *session) ended() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

// hangUp ends the session and sends DISCONNECT.
func (s *session) hangUp(err error) {
	s.end(err)
	if s.pc != nil {
		s.pc.Disconnect(disconnectQuiesce)
	}
}

// missing returns the filters not yet subscribed on this session.
func (s *session) missing(want map[string]byte) map[string]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]byte{}
	for f, q := range want {
		if !s.subscribed[f] {
			m[f] = q
		}
	}
	return m
}

// wait blocks until tok completes, the session ends or ctx ends.
func (s *session) wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-s.lost:
		return s.lostErr()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// lostErr describes an ended session as ErrNotConnected with its reason.
// Call it only after lost is closed.
func (s *session) lostErr() error {
	if s.err == nil {
		return ErrNotConnected
	}
	return fmt.Errorf("%w: %w", ErrNotConnected, s.err)
}

// subscribe sends one SUBSCRIBE for filters and waits for the SUBACK,
// as the Node SDK does before it relies on a subscription.
func (s *session) subscribe(ctx context.Context, filters map[string]byte) error {
	if len(filters) == 0 {
		return nil
	}
	tok := s.pc.SubscribeMultiple(filters, nil)
	if err := s.wait(ctx, tok); err != nil {
		return fmt.Errorf("device: subscribe: %w", err)
	}
	st, _ := tok.(*mqtt.SubscribeToken)
	s.mu.Lock()
	defer s.mu.Unlock()
	var refused []string
	for f := range filters {
		if st != nil && st.Result()[f] >= 0x80 {
			refused = append(refused, f)
			continue
		}
		s.subscribed[f] = true
	}
	if len(refused) > 0 {
		return fmt.Errorf("device: subscribe refused for %v", refused)
	}
	return nil
}

// filterSnapshot copies the filters the application needs.
func (c *Client) filterSnapshot() map[string]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]byte, len(c.filters))
	for f, q := range c.filters {
		m[f] = q
	}
	return m
}

// dial makes one connection attempt: network, TLS, CONNECT (fields as the
// official SDKs send them, protocol reference §3.2) and a SUBSCRIBE for every
// filter the application needs.
func (c *Client) dial(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.set.connectTimeout)
	defer cancel()

	password, expiry, err := c.cred.password(c.id, c.set.tokenLifetime, time.Now())
	if err != nil {
		return nil, fmt.Errorf("device: token: %w", err)
	}
	s := newSession()
	s.token, s.expiry = password, expiry

	// The caller's context may end during the handshake; closing the
	// connection then makes paho give up at once. Once connected, the
	// connection must outlive that context, so the hook is removed.
	var hookMu sync.Mutex
	var stopHook func() bool
	scheme, addr, serverName := c.endpoint()
	opts := mqtt.NewClientOptions().
		AddBroker(scheme + "://" + addr).
		SetClientID(c.id.clientID()).
		SetUsername(c.username).
		SetPassword(password).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetKeepAlive(c.set.keepAlive).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(c.set.connectTimeout).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.dispatch(m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { s.end(err) }).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			conn, err := c.openConn(ctx, addr, serverName)
			if err != nil {
				return nil, err
			}
			hookMu.Lock()
			stopHook = context.AfterFunc(ctx, func() { _ = conn.Close() })
			hookMu.Unlock()
			return conn, nil
		})
	s.pc = mqtt.NewClient(opts)

	tok := s.pc.Connect()
	<-tok.Done() // bounded: dialling honours ctx and paho times the handshake out
	hookMu.Lock()
	stop := stopHook
	hookMu.Unlock()
	if err := tok.Error(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("device: connect: %w", context.Cause(ctx))
		}
		if ct, ok := tok.(*mqtt.ConnectToken); ok && ct.ReturnCode() > 0 && ct.ReturnCode() < 6 {
			return nil, connackError(ct.ReturnCode(), err)
		}
		return nil, wire.ExplainTLS(fmt.Errorf("device: connect: %w", err), addr, caOption)
	}
	if stop != nil && !stop() {
		// ctx ended just as the CONNACK arrived and closed the connection.
		s.hangUp(ctx.Err())
		return nil, fmt.Errorf("device: connect: %w", context.Cause(ctx))
	}
	if err := s.subscribe(ctx, c.filterSnapshot()); err != nil {
		s.hangUp(err)
		return nil, err
	}
	c.log.Debug("connected", "address", addr, "scheme", scheme)
	return s, nil
}

// caOption is the advice of a certificate error: how a user of this client
// trusts the emulator's CA.
const caOption = "trust its CA with device.WithCAFile or device.WithRootCAs (the iothub CLI and the sample apps read IOTHUB_CA_FILE)"

// endpoint returns the URL scheme (informational: the connection is opened
// by openConn), the address and the TLS server name.
func (c *Client) endpoint() (scheme, addr, serverName string) {
	addr, serverName = c.id.address(c.set.webSockets)
	if c.set.webSockets {
		return "wss", addr, serverName
	}
	return "ssl", addr, serverName
}

// tlsConfig returns the client TLS configuration: TLS 1.2 or later (the
// hub's minimum), the configured roots and the X.509 identity if any.
func (c *Client) tlsConfig(serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    c.set.rootCAs,
		ServerName: serverName,
	}
	if c.set.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.set.cert}
	}
	return cfg
}

// openConn opens the network connection: TLS to addr, or a WebSocket to
// wss://addr/$iothub/websocket with subprotocol "mqtt" (Node mqtt_ws.ts,
// Python uses the same path).
func (c *Client) openConn(ctx context.Context, addr, serverName string) (net.Conn, error) {
	cfg := c.tlsConfig(serverName)
	if !c.set.webSockets {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
	d := websocket.Dialer{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: cfg,
		Subprotocols:    []string{"mqtt"},
	}
	ws, resp, err := d.DialContext(ctx, "wss://"+addr+"/$iothub/websocket", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	return wsconn.New(ws), nil
}

// supervise owns the connection after Connect: it resubscribes when the
// application needs new topics, renews generated tokens before they expire
// (or asks the application for one it gave), and reconnects after a drop,
// until Close or the retry policy gives up.
func (c *Client) supervise(s *session) {
	for s != nil {
		s = c.superviseOnce(s)
	}
}

// superviseOnce waits for the next event on s and returns the session to
// watch next: s itself, its replacement, or nil when the supervisor stops.
func (c *Client) superviseOnce(s *session) *session {
	var renewC <-chan time.Time
	if !s.expiry.IsZero() && !s.asked {
		t := time.NewTimer(time.Until(s.expiry.Add(-c.set.renewMargin())))
		defer t.Stop()
		renewC = t.C
	}
	select {
	case <-c.ctx.Done():
		s.hangUp(ErrClosed)
		c.stopRunning(nil)
		return nil
	case <-c.kick:
		ctx, cancel := context.WithTimeout(c.ctx, c.set.connectTimeout)
		err := s.subscribe(ctx, s.missing(c.filterSnapshot()))
		cancel()
		if err != nil && !s.ended() && c.ctx.Err() == nil {
			// A subscription the application relies on failed: start over
			// on a fresh connection rather than run without it.
			c.log.Warn("subscribe failed; reconnecting", "error", err)
			s.hangUp(err)
		}
		return s
	case <-renewC:
		if !c.cred.renewable() {
			// A token the application gave: only it can make the next one
			// (Python's on_new_sastoken_required). Ask once per token, not
			// again after a reconnect with the same one.
			s.asked = true
			if c.cred.firstAsk(s.token) {
				c.askForToken()
			}
			return s
		}
		c.log.Debug("renewing SAS token")
		s.hangUp(errRenewing)
		return c.reconnect(nil)
	case <-c.renew:
		s.hangUp(errRenewing)
		return c.reconnect(nil)
	case <-s.lost:
		c.log.Info("connection lost", "error", s.err)
		if _, never := c.set.retry.(noRetry); never {
			// No reconnection at all, not even the immediate first attempt:
			// the Node SDK's client only reconnects when its policy accepts
			// the error, and WithoutRetries never does.
			c.mu.Lock()
			c.sess = nil
			c.mu.Unlock()
			c.stopRunning(s.err)
			return nil
		}
		return c.reconnect(s.err)
	}
}

// reconnect replaces a finished session: the first attempt is immediate,
// later ones follow the retry policy. It returns nil when the client closes
// or the policy gives up.
func (c *Client) reconnect(cause error) *session {
	c.mu.Lock()
	c.sess = nil
	if c.closed {
		c.running = false
		c.mu.Unlock()
		return nil
	}
	c.setStateLocked(StateReconnecting, cause)
	c.mu.Unlock()

	for failures := 0; ; {
		select {
		case <-c.renew: // this dial reads the latest token anyway
		default:
		}
		s, err := c.dial(c.ctx)
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.running = false
				c.mu.Unlock()
				s.hangUp(ErrClosed) // outside the lock, see Connect
				return nil
			}
			c.sess = s
			c.setStateLocked(StateConnected, nil)
			c.mu.Unlock()
			return s
		}
		if c.ctx.Err() != nil {
			c.stopRunning(nil)
			return nil
		}
		failures++
		// The hub's certificate cannot be verified: another attempt fails
		// the same way until someone changes the trust, so the policy is
		// not asked.
		delay, ok := time.Duration(0), false
		if !wire.IsCertificateError(err) {
			delay, ok = c.set.retry.Delay(failures, err)
		}
		if !ok {
			// Reported through StateDisconnected, and carried by the
			// errors of later operations (see current).
			c.log.Warn("reconnect failed; giving up", "error", err, "failures", failures)
			c.stopRunning(err)
			return nil
		}
		c.log.Info("reconnect failed", "error", err, "failures", failures, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			c.stopRunning(nil)
			return nil
		}
	}
}

// stopRunning records that the supervisor is exiting without a connection.
func (c *Client) stopRunning(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	if !c.closed {
		c.setStateLocked(StateDisconnected, err)
	}
}
