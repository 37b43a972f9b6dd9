// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/uuid"
	"github.com/iothubemulator/iothub/internal/wire"
	"github.com/iothubemulator/iothub/internal/wsconn"
)

// AMQP is how the hub takes cloud-to-device messages and hands out
// feedback and file-upload notifications, and how its Event Hub-compatible
// endpoint delivers telemetry. The client keeps one AMQP connection to the
// hub for the first three, opened on first use and shared by the C2D
// sender and the receivers; each EventReceiver has one to the event hub.
// A connection authenticates by claims-based security: after SASL
// ANONYMOUS, a put-token on $cbs for each audience, with a SAS token the
// client mints from the policy key and puts again, on the same connection,
// when a quarter of its lifetime is left (the REST token cache's rule).
//
// Transports (amqp.md §2.1): AMQP over TLS on port 5671 of the hub's host,
// or AMQP over WebSockets (subprotocol AMQPWSB10) at
// wss://{host}/$iothub/websocket (/$servicebus/websocket for an event hub).
// A HostName with a ":port" is the hub's HTTPS port, which also serves
// AMQP over WebSockets, so such a client uses WebSockets there unless
// WithAMQPAddr names the AMQP port.

const (
	transportTLS   = "amqps"
	transportWS    = "wss"
	transportPlain = "amqp" // only for an event hub's UseDevelopmentEmulator connection string

	// wsSubprotocol is the WebSocket subprotocol of AMQP (Node SDKs'
	// amqp_ws.ts; @azure/core-amqp).
	wsSubprotocol = "AMQPWSB10"
	wsPathHub     = "/$iothub/websocket"
	wsPathEH      = "/$servicebus/websocket"

	defaultAMQPSPort = "5671"

	// tokenTypeSAS is the put-token type of a SAS token (amqp.md §2.2).
	tokenTypeSAS = "servicebus.windows.net:sastoken"

	// amqpDialTimeout bounds the TCP, TLS and WebSocket handshakes and the
	// AMQP open when the caller's context has no deadline of its own.
	amqpDialTimeout = 60 * time.Second
)

// WithWebSockets makes the client speak AMQP over WebSockets on port 443
// (wss://{host}/$iothub/websocket) instead of AMQP over TLS on 5671, for
// networks that only let HTTPS out. REST calls are HTTPS either way. A
// HostName with a ":port" already uses WebSockets on that port.
func WithWebSockets() Option {
	return func(c *config) { c.webSockets = true }
}

// WithAMQPAddr makes the client connect AMQP over TLS to addr (host:port)
// instead of port 5671 of the hub's host, still presenting the hub's host
// name for TLS: an emulator whose AMQP listener is on another port
// (emulator.Server.AMQPAddr in tests). It cannot be combined with
// WithWebSockets.
func WithAMQPAddr(addr string) Option {
	return func(c *config) { c.amqpAddr = addr }
}

// amqpTarget says how to reach an AMQP endpoint.
type amqpTarget struct {
	transport string // transportTLS, transportWS or transportPlain
	addr      string // host:port to dial; for WebSockets the host[:port] of the URL
	host      string // host name without port: TLS server name, the open frame's hostname
	wsPath    string // the WebSocket path
}

func (t amqpTarget) String() string {
	if t.transport == transportWS {
		return "wss://" + t.addr + t.wsPath
	}
	return t.transport + "://" + t.addr
}

// hubTarget is where the hub's AMQP nodes are, by the rules above.
func (c *Client) hubTarget() amqpTarget {
	host := stripPort(c.host)
	switch {
	case c.amqpAddr != "":
		return amqpTarget{transport: transportTLS, addr: c.amqpAddr, host: host}
	case c.webSockets || host != c.host:
		return amqpTarget{transport: transportWS, addr: c.host, host: host, wsPath: wsPathHub}
	}
	return amqpTarget{transport: transportTLS, addr: net.JoinHostPort(host, defaultAMQPSPort), host: host}
}

func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// dial opens the network connection and the AMQP connection over it.
func (c *Client) dial(ctx context.Context, t amqpTarget) (*amqp.Conn, error) {
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, amqpDialTimeout)
		defer cancel()
	}
	tlsCfg := c.tlsConfig.Clone()
	tlsCfg.ServerName = t.host
	var nc net.Conn
	var err error
	switch t.transport {
	case transportTLS:
		nc, err = (&tls.Dialer{Config: tlsCfg}).DialContext(ctx, "tcp", t.addr)
	case transportPlain:
		nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", t.addr)
	case transportWS:
		d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{wsSubprotocol}, Proxy: http.ProxyFromEnvironment}
		var ws *websocket.Conn
		var resp *http.Response
		ws, resp, err = d.DialContext(ctx, "wss://"+t.addr+t.wsPath, http.Header{"User-Agent": {c.userAgent}})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil && ws.Subprotocol() != wsSubprotocol {
			ws.Close()
			err = &handshakeError{url: t.String(), status: http.StatusOK}
		} else if err != nil && resp != nil {
			err = &handshakeError{url: t.String(), status: resp.StatusCode}
		}
		if err == nil {
			nc = wsconn.New(ws)
		}
	default:
		err = fmt.Errorf("unknown AMQP transport %q", t.transport)
	}
	if err != nil {
		return nil, err
	}
	conn, err := amqp.NewConn(ctx, nc, &amqp.ConnOptions{
		HostName: t.host,
		SASLType: amqp.SASLTypeAnonymous(),
		// The hub answers heartbeats inside the peer's idle timeout; one
		// minute is what the Node SDKs and @azure/core-amqp use.
		IdleTimeout: time.Minute,
		Properties:  map[string]any{"com.microsoft:client-version": c.userAgent},
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return conn, nil
}

// handshakeError is a WebSocket upgrade the server refused, or accepted
// without the AMQP subprotocol: a server with no AMQP over WebSockets.
type handshakeError struct {
	url    string
	status int
}

func (e *handshakeError) Error() string {
	if e.status == http.StatusOK {
		return fmt.Sprintf("the server at %s did not accept the %s subprotocol: it does not serve AMQP over WebSockets", e.url, wsSubprotocol)
	}
	return fmt.Sprintf("the server at %s refused the AMQP WebSocket upgrade with HTTP %d %s; a hub (or the emulator) serves AMQP over WebSockets there, and AMQP over TLS on port 5671 (WithAMQPAddr)",
		e.url, e.status, http.StatusText(e.status))
}

// transient reports whether the refusal may pass: a busy or failing server.
func (e *handshakeError) transient() bool {
	return e.status == http.StatusTooManyRequests || e.status >= 500
}

// minter mints a SAS token for an audience.
type minter func(audience string, now time.Time) (token string, expiry time.Time, err error)

// amqpConn is one authenticated AMQP connection with one session, which
// every link of the connection uses.
type amqpConn struct {
	c      *Client
	target amqpTarget
	conn   *amqp.Conn
	sess   *amqp.Session
	mint   minter
	cbs    *rpcLink

	mu     sync.Mutex
	tokens map[string]*putToken // audience -> the token put for it
	wake   chan struct{}        // a new audience, or a test asking for renewal
	done   chan struct{}        // closed by close
	once   sync.Once
	wg     sync.WaitGroup
}

// putToken is a token put on $cbs for one audience.
type putToken struct {
	token          string
	minted, expiry time.Time
	next           time.Time // when to put it again
	failures       int       // renewals failed in a row
}

func newPutToken(token string, minted, expiry time.Time) *putToken {
	return &putToken{token: token, minted: minted, expiry: expiry, next: expiry.Add(-expiry.Sub(minted) / 4)}
}

// openAMQP dials t, opens a session and the $cbs links, and puts a token
// for each audience.
func (c *Client) openAMQP(ctx context.Context, op string, t amqpTarget, mint minter, audiences ...string) (*amqpConn, error) {
	c.log.DebugContext(ctx, "iothub: AMQP connecting", "op", op, "to", t.String())
	conn, err := c.dial(ctx, t)
	if err != nil {
		return nil, c.amqpError(op, t.addr, err)
	}
	a := &amqpConn{c: c, target: t, conn: conn, mint: mint, tokens: map[string]*putToken{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(err error) (*amqpConn, error) {
		conn.Close()
		return nil, c.amqpError(op, t.addr, err)
	}
	if a.sess, err = conn.NewSession(ctx, nil); err != nil {
		return fail(err)
	}
	if a.cbs, err = newRPCLink(ctx, a.sess, "$cbs", "cbs"); err != nil {
		return fail(err)
	}
	for _, aud := range audiences {
		if err := a.authorize(ctx, op, aud); err != nil {
			conn.Close()
			return nil, err
		}
	}
	a.wg.Add(1)
	go a.renew()
	c.log.DebugContext(ctx, "iothub: AMQP connected", "op", op, "to", t.String())
	return a, nil
}

// alive reports whether the connection still works.
func (a *amqpConn) alive() bool {
	select {
	case <-a.conn.Done():
		return false
	case <-a.done:
		return false
	default:
		return true
	}
}

func (a *amqpConn) close() {
	a.once.Do(func() {
		close(a.done)
		a.conn.Close()
	})
	a.wg.Wait()
}

// authorize puts a token for audience unless one is held.
func (a *amqpConn) authorize(ctx context.Context, op, audience string) error {
	a.mu.Lock()
	_, held := a.tokens[audience]
	a.mu.Unlock()
	if held {
		return nil
	}
	p, err := a.putToken(ctx, op, audience)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.tokens[audience] = p
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// putToken mints a token for audience and puts it on $cbs.
func (a *amqpConn) putToken(ctx context.Context, op, audience string) (*putToken, error) {
	now := a.c.now()
	tok, expiry, err := a.mint(audience, now)
	if err != nil {
		return nil, errorf(op, "%w", err)
	}
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{To: ptr("$cbs")},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      tokenTypeSAS,
			"name":      audience,
		},
		Value: tok,
	}
	status, desc, _, err := a.cbs.call(ctx, req)
	if err != nil {
		return nil, a.c.amqpError(op, a.target.addr, err)
	}
	a.c.log.DebugContext(ctx, "iothub: AMQP put-token", "op", op, "audience", audience, "status", status)
	if status < 200 || status > 299 {
		return nil, statusError(op, status, desc)
	}
	return newPutToken(tok, now, expiry), nil
}

// renew puts every audience's token again when a quarter of its lifetime
// is left, until the connection closes. A failed renewal is retried with
// backoff; once the token has expired the hub detaches the links it
// authorized, and the client's receivers reconnect.
func (a *amqpConn) renew() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		due, next := "", time.Time{}
		for aud, p := range a.tokens {
			if due == "" || p.next.Before(next) {
				due, next = aud, p.next
			}
		}
		a.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if due != "" {
			timer = time.NewTimer(max(next.Sub(a.c.now()), 0))
			fire = timer.C
		}
		select {
		case <-a.done:
		case <-a.conn.Done():
		case <-a.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if !a.alive() {
			return
		}
		a.mu.Lock()
		p := a.tokens[due]
		a.mu.Unlock()
		if p == nil || a.c.now().Before(p.next) {
			continue // woken early: look again
		}
		if tok, _, err := a.mint(due, a.c.now()); err == nil && tok == p.token {
			// A ready-made token (NewFromSASToken) cannot be renewed.
			a.mu.Lock()
			p.next = p.expiry.Add(100 * 365 * 24 * time.Hour)
			a.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), amqpDialTimeout)
		np, err := a.putToken(ctx, "RenewToken", due)
		cancel()
		a.mu.Lock()
		if err != nil {
			p.failures++
			// Retry well before the old token lapses, never in a busy loop.
			p.next = a.c.now().Add(min(wire.Backoff(p.failures, time.Second, time.Minute, 0.25), max(p.expiry.Sub(a.c.now())/2, time.Second)))
			a.c.log.Info("iothub: AMQP token renewal failed", "audience", due, "failures", p.failures, "error", err)
		} else {
			a.tokens[due] = np
			a.c.log.Debug("iothub: AMQP token renewed", "audience", due, "expiry", np.expiry)
		}
		a.mu.Unlock()
	}
}

// rpcLink is a request-response pair of links on one node ($cbs,
// $management): requests go out on the sender, answers come back on a
// receiver whose target is the reply-to address, matched by correlation
// id. One request at a time.
type rpcLink struct {
	mu    sync.Mutex
	send  *amqp.Sender
	recv  *amqp.Receiver
	reply string
}

func newRPCLink(ctx context.Context, sess *amqp.Session, node, prefix string) (*rpcLink, error) {
	reply := prefix + "-" + uuid.New()
	send, err := sess.NewSender(ctx, node, nil)
	if err != nil {
		return nil, err
	}
	recv, err := sess.NewReceiver(ctx, node, &amqp.ReceiverOptions{TargetAddress: reply, Credit: 1})
	if err != nil {
		_ = send.Close(ctx)
		return nil, err
	}
	return &rpcLink{send: send, recv: recv, reply: reply}, nil
}

// call sends req and returns the answer's status-code and
// status-description, and the answer.
func (r *rpcLink) call(ctx context.Context, req *amqp.Message) (int, string, *amqp.Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := uuid.New()
	if req.Properties == nil {
		req.Properties = &amqp.MessageProperties{}
	}
	req.Properties.MessageID = id
	req.Properties.ReplyTo = &r.reply
	if err := r.send.Send(ctx, req, nil); err != nil {
		return 0, "", nil, err
	}
	for {
		m, err := r.recv.Receive(ctx, nil)
		if err != nil {
			return 0, "", nil, err
		}
		if err := r.recv.AcceptMessage(ctx, m); err != nil {
			return 0, "", nil, err
		}
		if m.Properties == nil || idString(m.Properties.CorrelationID) != id {
			continue // the answer to an earlier request that timed out
		}
		status, ok := intValue(appProp(m, "status-code", "statusCode"))
		if !ok {
			return 0, "", nil, fmt.Errorf("the answer on %s has no status-code", r.send.Address())
		}
		desc, _ := appProp(m, "status-description", "statusDescription").(string)
		return status, desc, m, nil
	}
}

func appProp(m *amqp.Message, names ...string) any {
	for _, n := range names {
		if v, ok := m.ApplicationProperties[n]; ok {
			return v
		}
	}
	return nil
}

// intValue reads an AMQP integer of any width.
func intValue(v any) (int, bool) {
	switch x := v.(type) {
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case int:
		return x, true
	case int16:
		return int(x), true
	case int8:
		return int(x), true
	case uint32:
		return int(x), true
	case uint64:
		return int(x), true
	case uint16:
		return int(x), true
	case uint8:
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

// idString is the string form of a message or correlation id of any AMQP
// type: a uuid as 8-4-4-4-12 hex, numbers in decimal, binary in hex.
func idString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case amqp.UUID:
		return x.String()
	case []byte:
		return fmt.Sprintf("%x", x)
	}
	return fmt.Sprint(v)
}

func ptr[T any](v T) *T { return &v }

// statusError is the error of a request answered with a failure status
// ($cbs, $management).
func statusError(op string, status int, desc string) *Error {
	if desc == "" {
		desc = http.StatusText(status)
	}
	e := &Error{Op: op, StatusCode: status, Message: desc}
	if status == http.StatusUnauthorized {
		e.Code, e.CodeName = CodeIotHubUnauthorizedAccess, wire.CodeName(CodeIotHubUnauthorizedAccess)
	}
	return e
}

// amqpError turns an AMQP failure into the client's error: an *Error for
// conditions the hub also answers on REST (wire.AMQPStatus), otherwise the
// AMQP error wrapped, with a certificate error's advice.
func (c *Client) amqpError(op, addr string, err error) error {
	var ce *wire.CertificateError
	var e *Error
	if errors.As(err, &ce) || errors.As(err, &e) || errors.Is(err, ErrClosed) {
		return err
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		if status, code, ok := wire.AMQPStatus(string(ae.Condition)); ok {
			msg := ae.Description
			if msg == "" {
				msg = string(ae.Condition)
			}
			return &Error{Op: op, StatusCode: status, Code: code, CodeName: wire.CodeName(code), Message: msg,
				Condition: string(ae.Condition), TrackingID: trackingID(ae.Info)}
		}
	}
	return wire.ExplainTLS(errorf(op, "%w", err), addr, caOption)
}

// trackingID reads the hub's tracking id from an AMQP error's info.
func trackingID(info map[string]any) string {
	for _, k := range []string{"com.microsoft:tracking-id", "tracking-id"} {
		if s, ok := info[k].(string); ok {
			return s
		}
	}
	return ""
}

// transient reports whether an AMQP operation that failed with err may
// succeed on a new link or connection: the connection or link went away,
// or the hub answered throttled, busy or an internal error. Refusals
// (unauthorized, not found, bad arguments), redirects and certificate or
// name errors are not.
func (c *Client) transient(err error, addr string) bool {
	if e := asError(err); e != nil {
		return retryableStatus(e) || e.StatusCode == http.StatusServiceUnavailable
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return false // a condition without a REST counterpart: redirect, stolen, ...
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var he *handshakeError
	if errors.As(err, &he) {
		return he.transient()
	}
	var connErr *amqp.ConnError
	var sessErr *amqp.SessionError
	var linkErr *amqp.LinkError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &sessErr), errors.As(err, &linkErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &netErr):
		return !wire.Deterministic(err, addr)
	}
	return false // the client's own failures: a token it cannot mint, an answer it cannot read
}

// withRetries runs f until it succeeds or fails in a way the retry policy
// or transient says not to repeat. Only steps that are safe to repeat use
// it: connecting, attaching, receiving.
func (c *Client) withRetries(ctx context.Context, op, addr string, f func() error) error {
	for failures := 1; ; failures++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return errorf(op, "%w (last error: %w)", ctx.Err(), err)
		}
		if !c.transient(err, addr) {
			return err
		}
		wait, ok := c.retry.Delay(failures, err)
		if !ok {
			return err
		}
		c.log.InfoContext(ctx, "iothub: AMQP retrying", "op", op, "attempt", failures, "wait", wait, "error", err)
		if serr := c.sleep(ctx, wait); serr != nil {
			return errorf(op, "%w; last attempt: %w", serr, err)
		}
	}
}

// hubAudience is the audience (and token resource) of the hub's nodes:
// the host name without port, as the Node service SDK puts it.
func (c *Client) hubAudience() string { return sas.ResourceURI(c.host, "", "") }

// hubConn returns the client's AMQP connection to the hub, opening (or
// reopening) it when needed. One caller dials at a time; Close does not
// wait for a dial, whose connection is then dropped.
func (c *Client) hubConn(ctx context.Context, op string) (*amqpConn, error) {
	if a, err := c.liveHub(op); a != nil || err != nil {
		return a, err
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if a, err := c.liveHub(op); a != nil || err != nil {
		return a, err // another caller dialed meanwhile
	}
	t := c.hubTarget()
	var a *amqpConn
	err := c.withRetries(ctx, op, t.addr, func() error {
		var err error
		a, err = c.openAMQP(ctx, op, t, c.cred.sasToken, c.hubAudience())
		return err
	})
	if err != nil {
		return nil, err
	}
	c.amqpMu.Lock()
	if c.amqpClosed {
		c.amqpMu.Unlock()
		a.close()
		return nil, errorf(op, "%w", ErrClosed)
	}
	old := c.hub
	c.hub, c.c2d = a, nil
	c.amqpMu.Unlock()
	if old != nil {
		old.close()
	}
	return a, nil
}

// liveHub returns the hub connection if it works, ErrClosed after Close,
// and nothing otherwise.
func (c *Client) liveHub(op string) (*amqpConn, error) {
	c.amqpMu.Lock()
	defer c.amqpMu.Unlock()
	if c.amqpClosed {
		return nil, errorf(op, "%w", ErrClosed)
	}
	if c.hub != nil && c.hub.alive() {
		return c.hub, nil
	}
	return nil, nil
}

// Close closes the client's AMQP connection to the hub, and with it the
// feedback and file-notification receivers it opened; AMQP calls made
// afterwards fail with ErrClosed. REST calls keep working. EventReceivers
// have connections of their own and their own Close. A client that never
// made an AMQP call has nothing to close.
func (c *Client) Close() error {
	c.amqpMu.Lock()
	c.amqpClosed = true
	hub := c.hub
	c.hub, c.c2d = nil, nil
	c.amqpMu.Unlock()
	if hub != nil {
		hub.close()
	}
	return nil
}
