// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/iothubemulator/iothub/internal/sas"
)

// Client is a device or module connection to an IoT hub over MQTT 3.1.1.
// All methods are safe for concurrent use. Handlers run on goroutines of the
// client, never on the MQTT reader, so they may call any client method but
// Close (which waits for them).
type Client struct {
	set      *settings
	id       identity
	cred     *credentials
	log      *slog.Logger
	username string

	ctx    context.Context // cancelled by Close; parent of all background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the client starts

	kick  chan struct{} // asks the supervisor to subscribe newly needed filters
	renew chan struct{} // asks the supervisor to reconnect with fresh credentials

	// mu guards the fields below. Lock order: mu before any serial queue's
	// or inbox's mutex; nothing else is held with mu.
	mu         sync.Mutex
	state      ConnectionState
	sess       *session      // live connection, nil when none
	changed    chan struct{} // closed and replaced whenever state or sess changes
	lastErr    error         // why the client last lost or failed a connection
	running    bool          // supervisor goroutine alive
	connecting bool          // a Connect call is dialling
	closed     bool
	filters    map[string]byte // subscriptions the application's features need

	onState        func(ConnectionState, error)
	onNewToken     func()
	messageHandler MessageHandler
	desiredHandler DesiredHandler
	methodHandlers map[string]MethodHandler
	defaultMethod  MethodHandler
	methodInboxes  map[string]*inbox[*MethodRequest] // "" is the catch-all inbox

	stateQ, c2dQ, desiredQ serial
	c2dInbox               *inbox[*Message]
	desiredInbox           *inbox[Properties]

	twinMu   sync.Mutex
	twinWait map[string]chan twinResponse // by $rid

	httpsOnce   sync.Once // the hub's HTTPS API (file upload), built on first use
	httpsBase   string
	httpsClient *http.Client
}

// ConnectionState is the client's connection status.
type ConnectionState int

// Connection states.
const (
	StateDisconnected ConnectionState = iota // not connected and not trying
	StateConnecting                          // Connect is dialling
	StateConnected                           // connected and subscribed
	StateReconnecting                        // connection lost or being renewed; retrying
	StateClosed                              // Close was called
)

// String returns the state's name.
func (s ConnectionState) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("ConnectionState(%d)", int(s))
}

// NewFromConnectionString returns a client for a device or module
// connection string:
//
//	HostName=h;DeviceId=d[;ModuleId=m];SharedAccessKey=k
//	HostName=h;DeviceId=d;SharedAccessKeyName=device;SharedAccessKey=k   (policy-signed, sends skn)
//	HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=...
//	HostName=h;DeviceId=d;x509=true                                       (with WithX509Certificate)
//
// GatewayHostName, when present, is where the client connects; HostName
// still names the hub in the username and the token. Either may carry a
// ":port" for local runs. The client does not connect until Connect.
func NewFromConnectionString(cs string, opts ...Option) (*Client, error) {
	c, err := sas.ParseConnectionString(cs)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if k := c.Kind(); k != sas.KindDevice && k != sas.KindModule {
		return nil, fmt.Errorf("device: connection string is for a %s, not a device or module", k)
	}
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(c.HostName, c.GatewayHostName, c.DeviceID, c.ModuleID)
	if err != nil {
		return nil, err
	}
	cred := &credentials{keyName: c.SharedAccessKeyName, key: c.SharedAccessKey, token: c.SharedAccessSignature}
	switch {
	case c.X509 && set.cert == nil:
		return nil, errors.New("device: connection string has x509=true; pass WithX509Certificate")
	case !c.X509 && set.cert != nil:
		return nil, errors.New("device: X.509 certificate given for a connection string with SAS credentials")
	}
	return newClient(id, cred, set), nil
}

// NewFromSASToken returns a client that authenticates with a ready-made SAS
// token. The client cannot renew it; call UpdateSASToken before it expires.
// moduleID is empty for a device.
func NewFromSASToken(host, deviceID, moduleID, token string, opts ...Option) (*Client, error) {
	if _, err := sas.ParseToken(token); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	if set.cert != nil {
		return nil, errors.New("device: X.509 certificate given with a SAS token")
	}
	id, err := newIdentity(host, "", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return newClient(id, &credentials{token: token}, set), nil
}

// NewFromX509 returns a client that authenticates with a client certificate
// (self-signed thumbprint or CA-signed); no password is sent. moduleID is
// empty for a device.
func NewFromX509(host, deviceID, moduleID string, cert tls.Certificate, opts ...Option) (*Client, error) {
	set, err := newSettings(append(opts, WithX509Certificate(cert)))
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(host, "", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return newClient(id, &credentials{}, set), nil
}

func newClient(id identity, cred *credentials, set *settings) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		set:            set,
		id:             id,
		cred:           cred,
		log:            set.logger.With("client", id.clientID()),
		username:       username(id, set.productInfo, set.modelID),
		ctx:            ctx,
		cancel:         cancel,
		kick:           make(chan struct{}, 1),
		renew:          make(chan struct{}, 1),
		changed:        make(chan struct{}),
		filters:        map[string]byte{},
		methodHandlers: map[string]MethodHandler{},
		methodInboxes:  map[string]*inbox[*MethodRequest]{"": newInbox[*MethodRequest]()},
		c2dInbox:       newInbox[*Message](),
		desiredInbox:   newInbox[Properties](),
		twinWait:       map[string]chan twinResponse{},
	}
	return c
}

// DeviceID returns the device id.
func (c *Client) DeviceID() string { return c.id.deviceID }

// ModuleID returns the module id, or "" for a device client.
func (c *Client) ModuleID() string { return c.id.moduleID }

// State returns the current connection state.
func (c *Client) State() ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// OnConnectionStateChange registers fn to be called, in order, on every
// state change with the error that caused it (nil for requested changes
// such as token renewal). StateClosed is reported last, from Close. nil
// removes the handler.
func (c *Client) OnConnectionStateChange(fn func(state ConnectionState, err error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onState = fn
}

// OnNewSASTokenRequired registers fn to be called when the token of a
// client built with NewFromSASToken is about to expire (Python's
// on_new_sastoken_required): the renew margin (WithTokenRenewMargin) before
// its se, at once if less is left, and once per token. fn should obtain a
// new token and pass it to UpdateSASToken; otherwise the hub refuses the
// client once the token has expired, and it stops with ErrUnauthorized. fn
// runs on the goroutine that delivers connection-state notifications. Other
// clients renew their credentials themselves and never call fn. nil
// removes it.
func (c *Client) OnNewSASTokenRequired(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onNewToken = fn
}

// askForToken queues the OnNewSASTokenRequired notification.
func (c *Client) askForToken() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fn := c.onNewToken; fn != nil && !c.closed {
		c.log.Info("asking the application for a new SAS token")
		c.stateQ.push(c, fn)
	}
}

// UpdateSASToken replaces the token of a client built with NewFromSASToken
// and, when connected, reconnects with it (MQTT cannot refresh credentials
// on a live connection). A client that is not connected, for example one
// that stopped with ErrUnauthorized, uses it on the next Connect.
func (c *Client) UpdateSASToken(token string) error {
	if c.cred.renewable() || c.set.cert != nil {
		return errors.New("device: UpdateSASToken needs a client built from a SAS token")
	}
	if _, err := sas.ParseToken(token); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	c.cred.mu.Lock()
	c.cred.token = token
	c.cred.mu.Unlock()
	select {
	case c.renew <- struct{}{}:
	default:
	}
	return nil
}

// setStateLocked records a state change and queues its notification.
// c.mu must be held.
func (c *Client) setStateLocked(st ConnectionState, err error) {
	if err != nil {
		c.lastErr = err
	}
	if st == c.state && st != StateReconnecting {
		return
	}
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
	if fn := c.onState; fn != nil && !c.closed {
		c.stateQ.push(c, func() { fn(st, err) })
	}
}

// goLocked runs f on a goroutine that Close waits for. c.mu must be held and
// the client not closed, which keeps every wg.Add before Close's wg.Wait.
func (c *Client) goLocked(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Connect connects to the hub and subscribes to the topics the registered
// handlers need. It makes one attempt, as the Python SDK's connect does; once
// connected, the client reconnects by itself after a drop, following the
// retry policy, and renews generated SAS tokens before they expire. Connect
// on a connected client returns nil; while the client is reconnecting it
// waits for the outcome.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	// Wait out another Connect or a reconnect in progress.
	for !c.closed && c.sess == nil && (c.connecting || c.running) {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.sess != nil:
		c.mu.Unlock()
		return nil
	}
	c.connecting = true
	c.setStateLocked(StateConnecting, nil)
	c.mu.Unlock()
	select {
	case <-c.renew: // this dial uses the latest token anyway
	default:
	}

	ctx, cancel := mergeCancel(ctx, c.ctx)
	defer cancel()
	s, err := c.dial(ctx)

	c.mu.Lock()
	c.connecting = false
	switch {
	case c.closed:
		c.mu.Unlock()
		if s != nil {
			// Outside the lock: DISCONNECT waits for paho's reader, which
			// may be waiting for the lock in dispatch.
			s.hangUp(ErrClosed)
		}
		return ErrClosed
	case err != nil:
		c.setStateLocked(StateDisconnected, err)
		c.mu.Unlock()
		return err
	}
	c.sess = s
	c.running = true
	c.setStateLocked(StateConnected, nil)
	c.goLocked(func() { c.supervise(s) })
	c.mu.Unlock()
	return nil
}

// Close disconnects and stops all background work: pending operations fail
// with ErrClosed, method-handler contexts are cancelled, and Close waits for
// handlers and queued notifications to finish. It is safe to call more than
// once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true // first, so the queued notifications stop here
	c.setStateLocked(StateClosed, nil)
	s := c.sess
	c.sess = nil
	onState := c.onState
	c.mu.Unlock()

	c.cancel()
	if s != nil {
		s.hangUp(ErrClosed)
	}
	c.wg.Wait()
	if onState != nil {
		onState(StateClosed, nil)
	}
	return nil
}

// current returns the live session, waiting while the client reconnects
// (including the moment between a connection ending and the supervisor
// noticing it).
func (c *Client) current(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, closed, running, ch, last := c.sess, c.closed, c.running || c.connecting, c.changed, c.lastErr
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case s != nil && !s.ended():
			return s, nil
		case s == nil && !running:
			if last != nil {
				return nil, fmt.Errorf("%w: %w", ErrNotConnected, last)
			}
			return nil, ErrNotConnected
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// require records that the application needs filter and asks the
// supervisor to subscribe to it if connected. Registration methods call it,
// which makes subscriptions lazy, as in the SDKs.
func (c *Client) require(filter string, qos byte) {
	c.mu.Lock()
	_, ok := c.filters[filter]
	if !ok {
		c.filters[filter] = qos
	}
	c.mu.Unlock()
	if !ok {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// withOpTimeout applies the operation timeout; its expiry surfaces as
// ErrTimeout through context.Cause.
func (c *Client) withOpTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.set.opTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, c.set.opTimeout, fmt.Errorf("%w after %v", ErrTimeout, c.set.opTimeout))
}

// mergeCancel returns a context that ends when either parent does, keeping
// a's values and deadline.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}
