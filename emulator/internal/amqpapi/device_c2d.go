// SPDX-License-Identifier: MIT

package amqpapi

import (
	"errors"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Cloud-to-device messages over AMQP (iot-hub-amqp-support, "Receive
// cloud-to-device messages"): the device attaches a receiver to
// /devices/{id}/messages/devicebound; each message goes out unsettled with
// its lock token as the delivery tag, and the device's outcome settles it
// in the hub's queue, the same queue MQTT and HTTPS devices read:
//
//	accepted           complete (feedback Success)
//	rejected           reject, dead-lettered (feedback Rejected)
//	released, modified abandon: delivered again, the delivery counted
//
// A delivery the device never settles before its link or connection ends
// is abandoned too. Redelivery, delivery counts and expiry belong to the
// hub (hub/c2d_delivery.go), as for MQTT.

// errNoC2DLink is a delivery attempted while no C2D link is attached: the
// hub puts the message back as it was.
var errNoC2DLink = errors.New("no cloud-to-device link is attached")

// SendC2D writes one cloud-to-device message to the device's C2D link.
// The hub calls it from the connection's send goroutine.
func (s *deviceSession) SendC2D(m *hub.C2DMessage) error {
	l := s.link(kindC2D)
	if l == nil {
		return errNoC2DLink
	}
	ctx, cancel := s.sendContext()
	defer cancel()
	o, err := l.Send(ctx, c2dAMQP(m), &amqp.SendOptions{Tag: lockTag(m.LockToken)})
	if err != nil {
		return err
	}
	hc := s.hubConn()
	if l.SenderSettleMode() == amqp.SenderSettled {
		// The device asked for pre-settled deliveries (at most once): the
		// message is complete once written, as over MQTT at QoS 0.
		hc.CompleteC2D(m.LockToken)
		return nil
	}
	go s.settleC2D(hc, o, m.LockToken)
	return nil
}

// settleC2D applies the device's outcome of one delivery to the queue.
func (s *deviceSession) settleC2D(hc *hub.Conn, o *amqp.Outgoing, token string) {
	<-o.Done()
	s.touch()
	switch st := o.State().(type) {
	case *amqp.Accepted:
		hc.CompleteC2D(token)
	case *amqp.Rejected:
		hc.RejectC2D(token)
	case *amqp.Released, *amqp.Modified:
		hc.AbandonC2D(token)
	default:
		// The link ended before the device settled: the message is
		// delivered again. (A connection that ended is forgotten by the
		// hub, which ignores this.)
		s.c.log.Debug("amqp: cloud-to-device delivery unsettled", "identity", s.id.String(), "state", st, "err", o.Err())
		hc.AbandonC2D(token)
	}
}
