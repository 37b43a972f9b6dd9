// SPDX-License-Identifier: MIT

package amqp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrLinkDetached is returned by calls on a link that was detached without
// an error.
var ErrLinkDetached = errors.New("amqp: link detached")

// Link is our end of a link the peer attached (part 2, section 2.6). Role
// is our role: RoleReceiver when the peer sends (call Receive), RoleSender
// when the peer receives (call Send). Methods are safe for concurrent use.
type Link struct {
	sess    *Session
	attach  *performAttach // the peer's attach; never changed
	role    Role
	handle  uint32 // ours
	sndMode SenderSettleMode
	rcvMode ReceiverSettleMode

	// Receiving (the peer sends).
	window      uint32
	maxMsgSize  uint64
	partial     *Delivery
	queue       []*Delivery
	held        int // delivered to the application, not yet settled by it
	bufBytes    int // bytes of partial, queued and held deliveries (Config.MaxBufferedBytes)
	recvSig     signal
	manualDrain bool

	// Both directions: delivery-count and link-credit (part 2, 2.6.7).
	deliveryCount uint32
	credit        uint32
	drain         bool
	waiting       int // Send calls in progress
	creditSig     signal
	sendSem       chan struct{}
	tagSeq        uint64

	attached   bool
	inAttach   bool   // OnAttach is running
	refusal    *Error // a Detach called from OnAttach
	detachSent bool
	ended      bool
	err        error
	done       chan struct{}
}

// Name returns the link name.
func (l *Link) Name() string { return l.attach.Name }

// Role returns our role on the link (the opposite of the peer's).
func (l *Link) Role() Role { return l.role }

// Source returns the peer's source terminus (nil if it sent none).
func (l *Link) Source() *Source { return l.attach.Source }

// Target returns the peer's target terminus (nil if it sent none).
func (l *Link) Target() *Target { return l.attach.Target }

// Address returns the address of the node the link is about: the target's
// when the peer sends, the source's when it receives ("" if absent).
func (l *Link) Address() string {
	if l.role == RoleReceiver {
		if t := l.attach.Target; t != nil {
			return t.Address
		}
		return ""
	}
	if s := l.attach.Source; s != nil {
		return s.Address
	}
	return ""
}

// Properties returns the peer's link properties (do not modify).
func (l *Link) Properties() map[Symbol]any { return l.attach.Properties }

// OfferedCapabilities returns the peer's offered capabilities.
func (l *Link) OfferedCapabilities() []Symbol { return l.attach.OfferedCapabilities }

// DesiredCapabilities returns the peer's desired capabilities.
func (l *Link) DesiredCapabilities() []Symbol { return l.attach.DesiredCapabilities }

// SenderSettleMode returns the link's snd-settle-mode.
func (l *Link) SenderSettleMode() SenderSettleMode { return l.sndMode }

// ReceiverSettleMode returns the link's rcv-settle-mode.
func (l *Link) ReceiverSettleMode() ReceiverSettleMode { return l.rcvMode }

// PeerMaxMessageSize returns the peer's max-message-size (0: no limit).
func (l *Link) PeerMaxMessageSize() uint64 { return l.attach.MaxMessageSize }

// Session returns the link's session.
func (l *Link) Session() *Session { return l.sess }

// Conn returns the link's connection.
func (l *Link) Conn() *Conn { return l.sess.conn }

// Done is closed when the link has ended (detached by either side, or its
// session or connection ended).
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link ended: the peer's detach error (*Error), the
// error we detached with, ErrLinkDetached, or the session's or connection's
// error. Nil while the link is attached.
func (l *Link) Err() error {
	l.sess.conn.mu.Lock()
	defer l.sess.conn.mu.Unlock()
	return l.err
}

// Detach detaches the link with e (nil for none) from any goroutine.
// Unsettled deliveries on it fail.
func (l *Link) Detach(e *Error) {
	l.sess.conn.mu.Lock()
	defer l.sess.conn.mu.Unlock()
	l.detachLocked(e)
}

func (l *Link) detachLocked(e *Error) {
	if l.detachSent || l.ended {
		return
	}
	if l.inAttach {
		// Called from OnAttach: the attach must be answered first, so this
		// becomes the refusal.
		if l.refusal == nil {
			l.refusal = e
			if e == nil {
				l.refusal = &Error{Condition: ErrDetachForced}
			}
		}
		return
	}
	s := l.sess
	l.detachSent = true
	delete(s.outHandles, l.handle)
	s.conn.sendLocked(s.ch, &performDetach{Handle: l.handle, Closed: true, Error: e}, nil)
	var err error = ErrLinkDetached
	if e != nil {
		err = e
	}
	l.endedLocked(err)
}

func (l *Link) endedLocked(err error) {
	if l.ended {
		return
	}
	l.ended = true
	l.err = err
	s := l.sess
	for id, o := range s.outgoing {
		if o.link == l {
			o.completeLocked(nil, err)
			delete(s.outgoing, id)
		}
	}
	for id, d := range s.incoming {
		if d.link == l {
			delete(s.incoming, id)
		}
	}
	l.queue = nil
	l.partial = nil
	l.sess.conn.releaseLocked(l, l.bufBytes)
	l.recvSig.notify()
	l.creditSig.notify()
	close(l.done)
}

// attachLocked answers the peer's attach (part 2, section 2.6.3).
func (s *Session) attachLocked(p *performAttach) {
	c := s.conn
	if p.Handle >= uint32(c.cfg.MaxLinksPerSession) {
		s.endLocked(Errorf(ErrResourceLimitExceeded, "handle %d exceeds handle-max %d", p.Handle, c.cfg.MaxLinksPerSession-1))
		return
	}
	if _, dup := s.links[p.Handle]; dup {
		s.endLocked(Errorf(ErrHandleInUse, "handle %d is already attached", p.Handle))
		return
	}
	var h uint32
	for ; ; h++ {
		if _, used := s.outHandles[h]; !used {
			break
		}
	}
	if h > s.peerHandleMax {
		// Part 2, 2.7.2: our handles must stay within the peer's handle-max.
		s.endLocked(Errorf(ErrResourceLimitExceeded, "no handle left within the peer's handle-max %d", s.peerHandleMax))
		return
	}
	l := &Link{
		sess: s, attach: p, role: !p.Role, handle: h,
		sndMode: p.SndSettleMode, rcvMode: p.RcvSettleMode,
		window: c.cfg.Credit, maxMsgSize: c.cfg.MaxMessageSize,
		sendSem: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if p.InitialDeliveryCount != nil {
		l.deliveryCount = *p.InitialDeliveryCount
	}
	s.links[p.Handle] = l
	s.outHandles[h] = l
	c.nLinks++

	reply := &AttachReply{}
	var refuse error
	switch {
	case c.nLinks > c.cfg.MaxLinks:
		refuse = Errorf(ErrResourceLimitExceeded, "more than %d links on one connection", c.cfg.MaxLinks)
	case p.Coordinator:
		refuse = Errorf(ErrNotImplemented, "transactions are not supported")
	case len(p.Unsettled) > 0 || p.IncompleteUnsettled:
		refuse = Errorf(ErrNotImplemented, "link recovery (an unsettled map) is not supported")
	case c.cfg.OnAttach == nil:
		refuse = Errorf(ErrNotFound, "no node at this address")
	default:
		// The callback may take its time; frames of other sessions wait,
		// application calls do not.
		l.inAttach = true
		c.mu.Unlock()
		refuse = c.cfg.OnAttach(l, reply)
		c.mu.Lock()
		l.inAttach = false
		if s.ended || l.ended || c.closeSent {
			return
		}
		if refuse == nil && l.refusal != nil {
			refuse = l.refusal
		}
	}
	if reply.Credit > 0 {
		l.window = reply.Credit
	}
	if reply.MaxMessageSize > 0 {
		l.maxMsgSize = reply.MaxMessageSize
	}
	if reply.RcvSettleMode != nil && l.role == RoleReceiver {
		l.rcvMode = *reply.RcvSettleMode
	}
	if reply.SndSettleMode != nil && l.role == RoleSender {
		l.sndMode = *reply.SndSettleMode
	}
	l.manualDrain = reply.ManualDrain
	out := &performAttach{
		Name: p.Name, Handle: h, Role: l.role, SndSettleMode: l.sndMode, RcvSettleMode: l.rcvMode,
		Source: p.Source, Target: p.Target,
		OfferedCapabilities: reply.OfferedCapabilities, DesiredCapabilities: reply.DesiredCapabilities,
		Properties: reply.Properties,
	}
	if reply.Source != nil {
		out.Source = reply.Source
	}
	if reply.Target != nil {
		out.Target = reply.Target
	}
	if l.role == RoleSender {
		var zero uint32
		out.InitialDeliveryCount = &zero
		l.deliveryCount = 0
	} else {
		out.MaxMessageSize = l.maxMsgSize
	}
	if refuse != nil {
		// Part 2, 2.6.3: a link that cannot be established is still attached
		// (with a null terminus on our side) and then detached with the error.
		if l.role == RoleSender && reply.Source == nil {
			out.Source = nil
		}
		if l.role == RoleReceiver && reply.Target == nil {
			out.Target = nil
		}
		c.sendLocked(s.ch, out, nil)
		e := asError(refuse)
		c.log.Debug("amqp: attach refused", "name", p.Name, "err", e)
		l.detachLocked(e)
		return
	}
	l.attached = true
	c.sendLocked(s.ch, out, nil)
	if l.role == RoleReceiver {
		l.replenishLocked()
	}
}

// flowFrame returns a flow with the session's and this link's state.
func (l *Link) flowFrame() *performFlow {
	f := l.sess.flowFrame()
	h, dc, cr := l.handle, l.deliveryCount, l.credit
	f.Handle, f.DeliveryCount, f.LinkCredit, f.Drain = &h, &dc, &cr, l.drain
	return f
}

// peerFlowLocked applies a link flow from the peer (part 2, 2.6.7).
func (l *Link) peerFlowLocked(p *performFlow) {
	if l.role == RoleSender {
		// link-credit(snd) = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd);
		// a null delivery-count(rcv) means our initial delivery-count, 0.
		var rdc, rcr uint32
		if p.DeliveryCount != nil {
			rdc = *p.DeliveryCount
		}
		if p.LinkCredit != nil {
			rcr = *p.LinkCredit
		}
		credit := int64(int32(rdc + rcr - l.deliveryCount))
		if credit < 0 {
			credit = 0
		}
		l.credit = uint32(credit)
		l.drain = p.Drain
		l.creditSig.notify()
		if l.drain && l.credit > 0 && l.waiting == 0 && !l.manualDrain {
			l.completeDrainLocked()
			return
		}
		if p.Echo || (l.drain && l.credit == 0) {
			l.sess.conn.sendLocked(l.sess.ch, l.flowFrame(), nil)
		}
		return
	}
	// We receive: the sender may have advanced its delivery-count (after a
	// drain); take up the difference from our credit.
	if p.DeliveryCount != nil {
		adv := *p.DeliveryCount - l.deliveryCount
		if adv > 0 && adv <= l.credit {
			l.deliveryCount += adv
			l.credit -= adv
			l.replenishLocked()
		}
	}
	if p.Echo {
		l.sess.conn.sendLocked(l.sess.ch, l.flowFrame(), nil)
	}
}

// completeDrainLocked uses up the credit without sending (part 2, 2.6.7:
// a drained sender advances delivery-count by its credit) and tells the
// peer.
func (l *Link) completeDrainLocked() {
	l.deliveryCount += l.credit
	l.credit = 0
	l.sess.conn.sendLocked(l.sess.ch, l.flowFrame(), nil)
}

// CompleteDrain answers a pending drain request ("nothing more now") on a
// link attached with AttachReply.ManualDrain. It does nothing otherwise.
func (l *Link) CompleteDrain() {
	c := l.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.role == RoleSender && l.drain && l.credit > 0 && !l.ended {
		l.completeDrainLocked()
	}
}

// Credit returns the credit the peer has granted on a link where we send,
// and whether it asked us to drain.
func (l *Link) Credit() (credit uint32, drain bool) {
	c := l.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	return l.credit, l.drain
}

// CreditChanged returns a channel closed at the next change of the peer's
// credit or drain flag (or the end of the link).
func (l *Link) CreditChanged() <-chan struct{} {
	c := l.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.ended {
		return l.done
	}
	return l.creditSig.wait()
}

// --- receiving -------------------------------------------------------------

// Delivery is a whole message the peer sent on a link where we receive.
type Delivery struct {
	Message *Message // nil if Format is not 0 or MessageFormatBatch and Raw does not decode
	Raw     []byte   // the message's bytes as sent (all transfer payloads joined)
	Tag     []byte   // the peer's delivery tag
	Format  uint32   // message-format
	Settled bool     // the peer sent it pre-settled: Settle is a no-op

	link        *Link
	id          uint32
	peerSettled bool
	settled     bool // by us
}

// Receive returns the next delivery, waiting for one until ctx ends or the
// link ends. Each unsettled delivery holds one unit of the link's credit
// window until it is settled: an application that does not settle stops
// the peer, which is how back-pressure reaches it.
func (l *Link) Receive(ctx context.Context) (*Delivery, error) {
	c := l.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.role != RoleReceiver {
		return nil, fmt.Errorf("amqp: Receive on link %q, where we send", l.Name())
	}
	for {
		if len(l.queue) > 0 {
			d := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			if !d.Settled {
				l.held++
			} else {
				c.releaseLocked(l, len(d.Raw))
			}
			l.replenishLocked()
			return d, nil
		}
		if l.ended {
			return nil, l.err
		}
		wait := l.recvSig.wait()
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			c.mu.Lock()
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
}

// replenishLocked tops credit up to the window once half of it is in use
// by the peer or by deliveries the application holds.
func (l *Link) replenishLocked() {
	if l.ended || l.detachSent || !l.attached {
		return
	}
	outstanding := uint32(len(l.queue) + l.held)
	if l.partial != nil {
		outstanding++
	}
	if outstanding >= l.window || l.credit+outstanding > l.window/2 {
		return
	}
	c := l.sess.conn
	if c.buffered >= c.cfg.MaxBufferedBytes {
		// The connection holds as much as it may: no new credit until the
		// application settles something (releaseLocked retries).
		c.starved[l] = struct{}{}
		return
	}
	l.credit = l.window - outstanding
	l.sess.conn.sendLocked(l.sess.ch, l.flowFrame(), nil)
}

func (l *Link) transferLocked(p *performTransfer) {
	s := l.sess
	d := l.partial
	if d == nil {
		if p.DeliveryID == nil {
			l.detachLocked(Errorf(ErrInvalidField, "the first transfer of a delivery has no delivery-id"))
			return
		}
		if l.credit == 0 {
			l.detachLocked(Errorf(ErrTransferLimit, "transfer without link credit"))
			return
		}
		l.credit--
		l.deliveryCount++
		d = &Delivery{link: l, id: *p.DeliveryID, Tag: p.DeliveryTag}
		if p.MessageFormat != nil {
			d.Format = *p.MessageFormat
		}
		if l.sndMode == SenderSettled {
			d.Settled = true
		}
		l.partial = d
	} else if p.DeliveryID != nil && *p.DeliveryID != d.id {
		l.detachLocked(Errorf(ErrInvalidField, "delivery-id %d inside delivery %d", *p.DeliveryID, d.id))
		return
	}
	if p.Settled != nil && *p.Settled {
		d.Settled = true
	}
	if p.Aborted {
		l.partial = nil
		s.conn.releaseLocked(l, len(d.Raw))
		l.replenishLocked()
		return
	}
	if uint64(len(d.Raw))+uint64(len(p.Payload)) > l.maxMsgSize {
		l.detachLocked(Errorf(ErrMessageSizeExceeded, "message larger than the max-message-size of %d bytes", l.maxMsgSize))
		return
	}
	if d.Raw == nil && !p.More {
		d.Raw = p.Payload // a one-frame delivery: the frame buffer is ours alone
	} else {
		d.Raw = append(d.Raw, p.Payload...)
	}
	l.bufBytes += len(p.Payload)
	s.conn.buffered += len(p.Payload)
	if p.More {
		return
	}
	l.partial = nil
	msg, err := DecodeMessage(d.Raw, s.conn.cfg.Limits)
	if err != nil && (d.Format == 0 || d.Format == MessageFormatBatch) {
		if !d.Settled {
			s.conn.sendLocked(s.ch, &performDisposition{Role: RoleReceiver, First: d.id, Settled: true,
				State: &Rejected{Error: asError(err)}}, nil)
		}
		s.conn.releaseLocked(l, len(d.Raw))
		l.replenishLocked()
		return
	}
	d.Message = msg
	if !d.Settled {
		s.incoming[d.id] = d
	}
	l.queue = append(l.queue, d)
	l.recvSig.notify()
}

// Accept settles the delivery as accepted.
func (d *Delivery) Accept() error { return d.Settle(&Accepted{}) }

// Reject settles the delivery as rejected with e (may be nil).
func (d *Delivery) Reject(e *Error) error { return d.Settle(&Rejected{Error: e}) }

// Release settles the delivery as released (the peer may send it again).
func (d *Delivery) Release() error { return d.Settle(&Released{}) }

// Modify settles the delivery as modified.
func (d *Delivery) Modify(failed, undeliverableHere bool, annotations map[Symbol]any) error {
	return d.Settle(&Modified{DeliveryFailed: failed, UndeliverableHere: undeliverableHere, MessageAnnotations: annotations})
}

// Settle sends the outcome of the delivery, from any goroutine, as late as
// the application likes (after a durable commit, say). It frees one unit of
// the link's credit window. A pre-settled delivery needs no settling; a
// second call is an error.
func (d *Delivery) Settle(state DeliveryState) error {
	l := d.link
	c := l.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.Settled {
		return nil
	}
	if d.settled {
		return errors.New("amqp: delivery already settled")
	}
	d.settled = true
	l.held--
	if l.ended {
		return l.err
	}
	c.releaseLocked(l, len(d.Raw))
	if d.peerSettled {
		l.replenishLocked()
		return nil
	}
	// rcv-settle-mode first: we settle with the outcome; second: we send
	// the outcome unsettled and settle once the sender has (part 2, 2.6.12).
	settle := l.rcvMode == ReceiverFirst
	if settle {
		delete(l.sess.incoming, d.id)
	}
	c.sendLocked(l.sess.ch, &performDisposition{Role: RoleReceiver, First: d.id, Settled: settle, State: state}, nil)
	l.replenishLocked()
	return nil
}

// --- sending ---------------------------------------------------------------

// SendOptions are the per-delivery choices of Send.
type SendOptions struct {
	Tag     []byte // delivery tag, at most 32 bytes; default an 8-byte counter
	Format  uint32 // message-format; default 0
	Settled bool   // send pre-settled (only on an snd-settle-mode mixed link)
}

// Outgoing is a delivery we sent; Done closes when the peer has settled it
// (or at once when it was sent settled), or when the link ended first.
type Outgoing struct {
	Tag   []byte
	link  *Link
	id    uint32
	state DeliveryState
	err   error
	done  chan struct{}
}

func (o *Outgoing) completeLocked(state DeliveryState, err error) {
	select {
	case <-o.done:
		return
	default:
	}
	if state != nil {
		o.state = state
	}
	o.err = err
	close(o.done)
}

// Done is closed once the delivery's fate is known.
func (o *Outgoing) Done() <-chan struct{} { return o.done }

// State returns the peer's outcome: *Accepted, *Rejected, *Released or
// *Modified; nil for a pre-settled delivery or before Done.
func (o *Outgoing) State() DeliveryState {
	c := o.link.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	return o.state
}

// Err returns the link's error if it ended before the peer settled.
func (o *Outgoing) Err() error {
	c := o.link.sess.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	return o.err
}

// Wait waits for Done and returns State and Err.
func (o *Outgoing) Wait(ctx context.Context) (DeliveryState, error) {
	select {
	case <-o.done:
		return o.State(), o.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send encodes m and sends it; see SendRaw.
func (l *Link) Send(ctx context.Context, m *Message, opts *SendOptions) (*Outgoing, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return l.SendRaw(ctx, b, opts)
}

// SendRaw sends an encoded message on a link where we send. It waits until
// the peer grants credit (and the peer's socket drains) or ctx ends, then
// queues the message, split into frames of the peer's max-frame-size, and
// returns. Sends on one link are delivered in call order. Whether the
// delivery is settled follows the link's snd-settle-mode (and opts.Settled
// on a mixed link); for an unsettled one, Outgoing reports the peer's
// outcome.
func (l *Link) SendRaw(ctx context.Context, payload []byte, opts *SendOptions) (*Outgoing, error) {
	if opts == nil {
		opts = &SendOptions{}
	}
	if l.role != RoleSender {
		return nil, fmt.Errorf("amqp: Send on link %q, where the peer sends", l.Name())
	}
	if len(opts.Tag) > 32 {
		return nil, errors.New("amqp: delivery tag longer than 32 bytes")
	}
	c := l.sess.conn
	s := l.sess
	c.mu.Lock()
	l.waiting++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		l.waiting--
		if l.waiting == 0 && l.drain && l.credit > 0 && !l.manualDrain && !l.ended && !l.detachSent {
			l.completeDrainLocked()
		}
		c.mu.Unlock()
	}()
	select {
	case l.sendSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.sendSem }()

	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if l.ended || l.detachSent {
			return nil, l.errLocked()
		}
		if c.closeSent || c.ended {
			return nil, ErrConnClosed
		}
		// The first frame must be sendable at once (credit and session
		// window), so that a delivery never starts before ctx could stop it.
		if l.credit > 0 && s.remoteIncomingWindow > 0 && len(c.out) < c.cfg.MaxWriteQueue {
			break
		}
		wait := l.creditSig.wait()
		window := s.window.wait()
		writable := c.writable.wait()
		c.mu.Unlock()
		select {
		case <-wait:
		case <-window:
		case <-writable:
		case <-ctx.Done():
			c.mu.Lock()
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	settled := l.sndMode == SenderSettled || (l.sndMode == SenderMixed && opts.Settled)
	tag := opts.Tag
	if tag == nil {
		l.tagSeq++
		tag = binary.BigEndian.AppendUint64(nil, l.tagSeq)
	}
	id := s.nextDeliveryID
	s.nextDeliveryID++
	l.credit--
	l.deliveryCount++
	o := &Outgoing{Tag: tag, link: l, id: id, done: make(chan struct{})}
	if settled {
		close(o.done)
	} else {
		s.outgoing[id] = o
	}
	// Room for the frame header and the largest first transfer performative
	// (a 32-byte tag included) leaves the rest of each frame for payload.
	chunk := int(c.peerMaxFrame) - 8 - 80
	format := opts.Format
	first := true
	for first || len(payload) > 0 {
		for s.remoteIncomingWindow == 0 {
			if l.ended || c.ended || s.ended {
				return o, nil // the delivery failed with the link; o says so
			}
			wait := s.window.wait()
			c.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
			}
			c.mu.Lock()
			if ctx.Err() != nil && !l.ended {
				// Part 2, 2.6.14: a delivery may be aborted; without window even
				// for that, the link goes.
				if s.remoteIncomingWindow > 0 {
					c.sendLocked(s.ch, &performTransfer{Handle: l.handle, Aborted: true, Settled: &settled}, nil)
					s.nextOutgoingID++
					s.remoteIncomingWindow--
				} else {
					l.detachLocked(Errorf(ErrInternal, "a delivery was abandoned midway"))
				}
				delete(s.outgoing, id)
				o.completeLocked(nil, ctx.Err())
				return o, ctx.Err()
			}
		}
		n := min(chunk, len(payload))
		more := n < len(payload)
		t := &performTransfer{Handle: l.handle, More: more}
		if first {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat, t.Settled = &id, tag, &format, &settled
		}
		c.sendLocked(s.ch, t, payload[:n])
		payload = payload[n:]
		s.nextOutgoingID++
		s.remoteIncomingWindow--
		first = false
	}
	return o, nil
}

func (l *Link) errLocked() error {
	if l.err != nil {
		return l.err
	}
	return ErrLinkDetached
}
