// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Device and module links (amqp.md §2.6).
//
// A device's presence on a connection is a deviceSession, registered with
// the hub as one hub.Conn. It starts when the connection first holds a
// claim for the identity: a put-token for its audience, or (for an X.509
// device, or one a DeviceConnect policy acts for) the first device link
// the claim authorizes. That is when an MQTT device's CONNECT would be
// accepted, so connection state, takeover and the hub's one connection per
// identity (whatever its transport) behave alike across MQTT and AMQP. It
// ends when the connection ends, when the hub closes it (a newer connection
// of the identity, the device disabled or deleted), when its claim lapses
// with no link left, or when the client has detached every link it had.
//
// Its links attach at different times (Node attaches the twin pair on the
// first twin call, the method pair on the first onDeviceMethod, C2D on the
// first message listener), so the session tells the hub what it can do as
// they come: methods once both method links are up, C2D once the receiver
// is, desired pushes once the twin client has PUT its subscription. The
// hub calls it only for what it has subscribed.
//
// Several identities may share a connection (the C# SDK pools them), each
// with its own session, claims and links; nothing of one is reachable from
// another.

// linkKind is what a device link is for.
type linkKind int

const (
	kindEvents     linkKind = iota // telemetry: the client sends
	kindInputs                     // module input messages: the client receives (nothing is routed yet)
	kindC2D                        // cloud-to-device messages: the client receives
	kindMethodsIn                  // method responses: the client sends
	kindMethodsOut                 // method requests: the client receives
	kindTwinIn                     // twin requests: the client sends
	kindTwinOut                    // twin responses and desired pushes: the client receives
)

// single kinds allow one link per identity and connection: a newer one
// replaces the older, which is detached (amqp:link:stolen, part 2, 2.6.1).
func (k linkKind) single() bool { return k != kindEvents && k != kindInputs }

// sendWait bounds how long the hub's send goroutine waits for a device to
// grant credit on one delivery; a device that stays stuck longer is too
// slow to keep (the hub then treats the send as failed).
const sendWait = 30 * time.Second

// deviceSession is one identity on one AMQP connection. It implements
// hub.Session and hub.C2DSession.
type deviceSession struct {
	c      *conn
	id     hub.Identity
	method string // "sas" or "x509": how the identity authenticated
	ready  chan struct{}

	mu      sync.Mutex
	hc      *hub.Conn // set once ready is closed
	links   map[*amqp.Link]linkKind
	current map[linkKind]*amqp.Link // the link of each single kind
	hadLink bool
	ended   bool
	twinSig chan struct{} // closed and replaced when a twin response link attaches

	methods methodRequests // method requests in flight (device_methods.go)
	modelID string         // the model id announced on a link, once recorded
}

var (
	_ hub.Session    = (*deviceSession)(nil)
	_ hub.C2DSession = (*deviceSession)(nil)
)

// admitWait bounds how long a new session waits for the hub to admit it
// (a reactor may delay OpConnect). An attach waits on the connection's
// reader, so it stays well inside the idle time-out.
const admitWait = 10 * time.Second

// ensureDevice returns the live session of id on this connection, starting
// it if there is none: the hub admits it as it admits an MQTT CONNECT (a
// fault's duration or throttling refuses it with the hub's error), then
// registers it, which closes the identity's older connection, on any
// transport.
func (c *conn) ensureDevice(id hub.Identity, method string) (*deviceSession, error) {
	if s, err := c.liveDevice(id); s != nil || err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(c.srv.ctx, admitWait)
	err := c.srv.hub.AdmitConnection(ctx, id)
	cancel()
	if err != nil {
		c.log.Info("amqp: device connection refused", "identity", id.String(), "err", oneLine(err))
		return nil, err
	}
	c.mu.Lock()
	if s, err := c.liveDeviceLocked(id); s != nil || err != nil {
		c.mu.Unlock() // started meanwhile by another link or put-token
		if s != nil {
			<-s.ready
		}
		return s, err
	}
	s := &deviceSession{c: c, id: id, method: method, ready: make(chan struct{}),
		links: map[*amqp.Link]linkKind{}, current: map[linkKind]*amqp.Link{}, twinSig: make(chan struct{})}
	s.methods.init()
	c.devices[id] = s
	c.mu.Unlock()

	// The claim has checked the token or certificate; token expiry is the
	// claim's to enforce (claims.go), so the hub gets no expiry of its own.
	hc := c.srv.hub.Connect(id, s, hub.ConnectInfo{AuthMethod: method, Transport: c.via.String(), RemoteAddr: c.remote})
	s.mu.Lock()
	s.hc = hc
	ended := s.ended
	s.mu.Unlock()
	close(s.ready)
	if ended {
		hc.Disconnect() // closed by the hub before Connect returned
	}
	c.log.Debug("amqp: device connected", "identity", id.String(), "auth", method)
	return s, nil
}

// liveDevice returns the live session of id on this connection, if any,
// once it is registered with the hub; an error once the connection has
// ended.
func (c *conn) liveDevice(id hub.Identity) (*deviceSession, error) {
	c.mu.Lock()
	s, err := c.liveDeviceLocked(id)
	c.mu.Unlock()
	if s != nil {
		<-s.ready
	}
	return s, err
}

func (c *conn) liveDeviceLocked(id hub.Identity) (*deviceSession, error) {
	if c.gone {
		return nil, amqp.Errorf(amqp.ErrDetachForced, "the connection is closing")
	}
	if s := c.devices[id]; s != nil && !s.isEnded() {
		return s, nil
	}
	return nil, nil
}

// claimMethod is the authentication method a claim stands for.
func claimMethod(cl *Claim) string {
	if !cl.Service() && cl.Method != "" {
		return cl.Method
	}
	return "sas"
}

func (s *deviceSession) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// hubConn returns the session's hub connection.
func (s *deviceSession) hubConn() *hub.Conn {
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hc
}

// touch records device activity.
func (s *deviceSession) touch() {
	if hc := s.hubConn(); hc != nil {
		hc.Touch()
	}
}

// end unregisters the session from the hub and detaches its links with e
// (none when the connection is gone anyway). Safe to call more than once.
func (s *deviceSession) end(e *amqp.Error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	links := make([]*amqp.Link, 0, len(s.links))
	for l := range s.links {
		links = append(links, l)
	}
	hc := s.hc
	s.mu.Unlock()
	if hc != nil {
		hc.Disconnect()
	}
	if e != nil {
		for _, l := range links {
			l.Detach(e)
		}
	}
	s.c.mu.Lock()
	if s.c.devices[s.id] == s {
		delete(s.c.devices, s.id)
	}
	s.c.mu.Unlock()
	s.c.log.Debug("amqp: device disconnected", "identity", s.id.String())
}

// Close is the hub ending the session: a newer connection of the identity
// took over, or the device was disabled or deleted. Its links are detached
// and its claims on this connection dropped, so that it cannot attach
// again without a new token; a connection that served only this identity
// is closed, as the hub closes a single device's connection.
func (s *deviceSession) Close() {
	go s.c.closeDevice(s)
}

func (c *conn) closeDevice(s *deviceSession) {
	s.end(amqp.Errorf(amqp.ErrDetachForced, "the hub closed %s's connection: a newer connection of the identity took over (ConnectionForcefullyClosedOnNewConnection, 400027), or the device was disabled or deleted", s.id))
	c.mu.Lock()
	c.dropDeviceClaimsLocked(s.id)
	others := len(c.devices) > 0
	for l, b := range c.bound {
		if b.need.Device == nil || *b.need.Device != s.id {
			select {
			case <-l.Done():
			default:
				others = true
			}
		}
	}
	ac := c.amqp
	c.mu.Unlock()
	if !others && ac != nil {
		ac.Close(amqp.Errorf(amqp.ErrConnectionForced, "the hub closed %s's connection: a newer connection of the identity took over (ConnectionForcefullyClosedOnNewConnection, 400027), or the device was disabled or deleted", s.id))
	}
}

// dropDeviceClaims forgets the connection's claims of id (its token's or
// certificate's), so that its links need a new put-token.
func (c *conn) dropDeviceClaims(id hub.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropDeviceClaimsLocked(id)
}

func (c *conn) dropDeviceClaimsLocked(id hub.Identity) {
	keep := c.claims[:0]
	for _, cl := range c.claims {
		if !cl.Service() && cl.Identity == id {
			cl.stopTimer()
			continue
		}
		keep = append(keep, cl)
	}
	c.claims = keep
}

// endDevices ends every session when the connection is gone.
func (c *conn) endDevices() {
	c.mu.Lock()
	ss := make([]*deviceSession, 0, len(c.devices))
	for _, s := range c.devices {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	for _, s := range ss {
		<-s.ready
		s.end(nil)
	}
}

// deviceClaimLapsed ends the session of a device whose claim has lapsed
// and whose links all went with it (links another claim still covers keep
// it alive).
func (c *conn) deviceClaimLapsed(cl *Claim) {
	c.mu.Lock()
	s := c.devices[cl.Identity]
	c.mu.Unlock()
	if s == nil {
		return
	}
	<-s.ready
	s.mu.Lock()
	alive := false
	for l := range s.links {
		select {
		case <-l.Done():
		default:
			alive = true
		}
	}
	s.mu.Unlock()
	if !alive {
		s.end(nil)
	}
}

// addLink records a link of the session and tells the hub what it enables.
// It runs in OnAttach, before the attach is answered.
func (s *deviceSession) addLink(l *amqp.Link, kind linkKind) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return amqp.Errorf(amqp.ErrDetachForced, "%s's session on this connection has just ended; attach again", s.id)
	}
	var replaced *amqp.Link
	if kind.single() {
		replaced = s.current[kind]
		s.current[kind] = l
	}
	s.links[l] = kind
	s.hadLink = true
	if kind == kindTwinOut {
		close(s.twinSig)
		s.twinSig = make(chan struct{})
	}
	methodsReady := s.current[kindMethodsIn] != nil && s.current[kindMethodsOut] != nil
	hc := s.hc
	s.mu.Unlock()
	if replaced != nil {
		replaced.Detach(amqp.Errorf(amqp.ErrLinkStolen, "a newer link of %s for the same purpose replaced this one", s.id))
	}
	go s.watchLink(l, kind)
	switch kind {
	case kindMethodsIn, kindMethodsOut:
		if methodsReady {
			hc.SubscribeMethods()
		}
	case kindC2D:
		hc.SubscribeC2D()
	}
	hc.Touch()
	if id, ok := l.Properties()[propModelID].(string); ok && id != "" {
		s.announceModel(id)
	}
	return nil
}

// watchLink forgets a link when it ends and withdraws what it enabled; the
// session ends with its last link.
func (s *deviceSession) watchLink(l *amqp.Link, kind linkKind) {
	<-l.Done()
	s.mu.Lock()
	delete(s.links, l)
	current := s.current[kind] == l
	if current {
		delete(s.current, kind)
	}
	last := len(s.links) == 0 && s.hadLink && !s.ended
	hc := s.hc
	s.mu.Unlock()
	if current && hc != nil {
		switch kind {
		case kindMethodsIn, kindMethodsOut:
			hc.UnsubscribeMethods()
		case kindC2D:
			hc.UnsubscribeC2D()
		case kindTwinOut, kindTwinIn:
			// The subscription lives with the twin pair: the SDKs PUT it
			// again after attaching a new one.
			hc.UnsubscribeDesired()
		}
	}
	if last {
		s.end(nil)
	}
}

// link returns the current link of a single kind, or nil.
func (s *deviceSession) link(kind linkKind) *amqp.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[kind]
}

// announceModel records the IoT Plug and Play model id a link announces
// (the C# SDK sends com.microsoft:model-id on its links), once per session,
// off the connection's reader.
func (s *deviceSession) announceModel(id string) {
	s.mu.Lock()
	if s.modelID == id {
		s.mu.Unlock()
		return
	}
	s.modelID = id
	hc := s.hc
	s.mu.Unlock()
	go hc.AnnounceModelID(id)
}

// sendContext bounds one send to the device by sendWait (a send on a link
// that ends returns at once without it).
func (s *deviceSession) sendContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.c.srv.ctx, sendWait)
}

// propModelID is the link property the C# SDK announces a device's IoT
// Plug and Play model id with (AmqpIotConstants.ModelId).
const propModelID amqp.Symbol = "com.microsoft:model-id"
