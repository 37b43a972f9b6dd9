// SPDX-License-Identifier: MIT

package amqp

import (
	"errors"
	"math"
)

// outgoingWindow is what we advertise as outgoing-window: we never hold
// transfers back for session reasons, only for the peer's incoming window
// and link credit.
const outgoingWindow = math.MaxInt32

// ErrSessionEnded is returned by calls on a link whose session has ended
// without an error.
var ErrSessionEnded = errors.New("amqp: session ended")

// Session is one session the peer began (part 2, section 2.5). All its
// state is guarded by its connection's mutex.
type Session struct {
	conn *Conn
	ch   uint16 // the peer's channel; we answer on the same number

	// Session flow control (part 2, section 2.5.6).
	nextIncomingID       uint32
	incomingWindow       uint32 // what is left of the window we granted
	nextOutgoingID       uint32
	remoteIncomingWindow uint32
	remoteOutgoingWindow uint32
	nextDeliveryID       uint32
	peerHandleMax        uint32
	window               signal // notified when remoteIncomingWindow grows

	links      map[uint32]*Link // by the peer's handle
	outHandles map[uint32]*Link // by our handle
	outgoing   map[uint32]*Outgoing
	incoming   map[uint32]*Delivery // unsettled deliveries from the peer

	endSent bool
	ended   bool
	err     error
	done    chan struct{}
}

func newSession(c *Conn, ch uint16, p *performBegin) *Session {
	return &Session{
		conn:                 c,
		ch:                   ch,
		nextIncomingID:       p.NextOutgoingID,
		incomingWindow:       c.cfg.SessionWindow,
		remoteIncomingWindow: p.IncomingWindow,
		remoteOutgoingWindow: p.OutgoingWindow,
		peerHandleMax:        p.HandleMax,
		links:                map[uint32]*Link{},
		outHandles:           map[uint32]*Link{},
		outgoing:             map[uint32]*Outgoing{},
		incoming:             map[uint32]*Delivery{},
		done:                 make(chan struct{}),
	}
}

// Conn returns the session's connection.
func (s *Session) Conn() *Conn { return s.conn }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it runs).
func (s *Session) Err() error {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	return s.err
}

// End ends the session with e (nil for no error) from any goroutine. Its
// links end at once; the channel is freed when the peer answers.
func (s *Session) End(e *Error) {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.endLocked(e)
}

func (s *Session) endLocked(e *Error) {
	if s.endSent || s.ended {
		return
	}
	s.endSent = true
	s.conn.sendLocked(s.ch, &performEnd{Error: e}, nil)
	var err error = ErrSessionEnded
	if e != nil {
		err = e
		s.conn.log.Debug("amqp: ending a session", "ch", s.ch, "err", e)
	}
	s.endedLocked(err)
}

// endedLocked marks the session and its links ended; the channel stays
// mapped until the peer's end arrives (if we sent ours).
func (s *Session) endedLocked(err error) {
	if s.ended {
		return
	}
	s.ended = true
	s.err = err
	for h, l := range s.links {
		l.endedLocked(err)
		delete(s.links, h)
		s.conn.nLinks--
	}
	for id, o := range s.outgoing {
		o.completeLocked(nil, err)
		delete(s.outgoing, id)
	}
	s.window.notify()
	close(s.done)
}

// handleLocked processes one frame for this session. It may unlock the
// connection around the application's attach callback.
func (s *Session) handleLocked(p any) {
	if s.endSent {
		if _, ok := p.(*performEnd); ok {
			delete(s.conn.sessions, s.ch)
		}
		return // part 2, 2.5.5: everything else after our end is ignored
	}
	switch p := p.(type) {
	case *performEnd:
		var err error = ErrSessionEnded
		if p.Error != nil {
			err = p.Error
		}
		s.conn.sendLocked(s.ch, &performEnd{}, nil)
		s.endSent = true
		s.endedLocked(err)
		delete(s.conn.sessions, s.ch)
	case *performAttach:
		s.attachLocked(p)
	case *performFlow:
		s.flowLocked(p)
	case *performTransfer:
		s.transferLocked(p)
	case *performDisposition:
		s.dispositionLocked(p)
	case *performDetach:
		s.detachLocked(p)
	}
}

// flowFrame returns a flow carrying the session's state (and no link's).
func (s *Session) flowFrame() *performFlow {
	nid := s.nextIncomingID
	return &performFlow{NextIncomingID: &nid, IncomingWindow: s.incomingWindow, NextOutgoingID: s.nextOutgoingID, OutgoingWindow: outgoingWindow}
}

func (s *Session) flowLocked(p *performFlow) {
	// Part 2, 2.5.6: remote-incoming-window = next-incoming-id(flow) +
	// incoming-window(flow) - next-outgoing-id(ours); a null next-incoming-id
	// means our initial outgoing id, 0.
	var nid uint32
	if p.NextIncomingID != nil {
		nid = *p.NextIncomingID
	}
	s.remoteIncomingWindow = nid + p.IncomingWindow - s.nextOutgoingID
	s.remoteOutgoingWindow = p.OutgoingWindow
	s.window.notify()
	if p.Handle == nil {
		if p.Echo {
			s.conn.sendLocked(s.ch, s.flowFrame(), nil)
		}
		return
	}
	l := s.links[*p.Handle]
	if l == nil {
		s.endLocked(Errorf(ErrUnattachedHandle, "flow for handle %d, which is not attached", *p.Handle))
		return
	}
	if l.detachSent {
		return
	}
	l.peerFlowLocked(p)
}

func (s *Session) transferLocked(p *performTransfer) {
	l := s.links[p.Handle]
	if l == nil {
		s.endLocked(Errorf(ErrUnattachedHandle, "transfer for handle %d, which is not attached", p.Handle))
		return
	}
	if s.incomingWindow == 0 {
		s.endLocked(Errorf(ErrWindowViolation, "transfer beyond the incoming window"))
		return
	}
	s.nextIncomingID++
	s.incomingWindow--
	s.remoteOutgoingWindow--
	if s.incomingWindow <= s.conn.cfg.SessionWindow/2 {
		// Deliveries are bounded by link credit, so the session window only
		// paces frames: reopen it whenever half is used.
		s.incomingWindow = s.conn.cfg.SessionWindow
		s.conn.sendLocked(s.ch, s.flowFrame(), nil)
	}
	if l.detachSent {
		return
	}
	if l.role != RoleReceiver {
		l.detachLocked(Errorf(ErrNotAllowed, "transfer on a link where the peer is the receiver"))
		return
	}
	l.transferLocked(p)
}

// inRange calls f for each key of m within the serial-number range
// [first, last], iterating the map when the range is larger (part 2,
// 2.7.6: a disposition covers a range of delivery-ids).
func inRange[T any](m map[uint32]T, first, last uint32, f func(uint32, T)) {
	span := last - first
	if uint64(span) < uint64(len(m)) {
		for id := first; ; id++ {
			if v, ok := m[id]; ok {
				f(id, v)
			}
			if id == last {
				break
			}
		}
		return
	}
	for id, v := range m {
		if id-first <= span {
			f(id, v)
		}
	}
}

func (s *Session) dispositionLocked(p *performDisposition) {
	last := p.First
	if p.Last != nil {
		last = *p.Last
	}
	if p.Role == RoleReceiver {
		// The peer receives: it speaks of deliveries we sent.
		inRange(s.outgoing, p.First, last, func(id uint32, o *Outgoing) {
			if p.State != nil {
				o.state = p.State
			}
			_, received := p.State.(*Received)
			if !p.Settled && (p.State == nil || received) {
				return
			}
			if !p.Settled {
				// rcv-settle-mode second (part 2, 2.6.12): the receiver waits for
				// us to settle before it does.
				s.conn.sendLocked(s.ch, &performDisposition{Role: RoleSender, First: id, Settled: true, State: p.State}, nil)
			}
			delete(s.outgoing, id)
			o.completeLocked(p.State, nil)
		})
		return
	}
	inRange(s.incoming, p.First, last, func(id uint32, d *Delivery) {
		if p.Settled {
			d.peerSettled = true
			delete(s.incoming, id)
		}
	})
}

func (s *Session) detachLocked(p *performDetach) {
	l := s.links[p.Handle]
	if l == nil {
		s.endLocked(Errorf(ErrUnattachedHandle, "detach for handle %d, which is not attached", p.Handle))
		return
	}
	delete(s.links, p.Handle)
	s.conn.nLinks--
	if l.detachSent {
		return // the answer to our detach: the handle is free now
	}
	l.detachSent = true
	delete(s.outHandles, l.handle)
	s.conn.sendLocked(s.ch, &performDetach{Handle: l.handle, Closed: p.Closed}, nil)
	var err error = ErrLinkDetached
	if p.Error != nil {
		err = p.Error
	}
	l.endedLocked(err)
}
