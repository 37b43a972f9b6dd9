// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"context"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/testutil"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// sendC2D queues a cloud-to-device message as the service would.
func (e *env) sendC2D(tb testing.TB, deviceID, messageID, ack string, props map[string]string) *hub.C2DMessage {
	tb.Helper()
	m, err := e.hub.SendC2D(context.Background(), deviceID, &hub.C2DMessage{MessageID: messageID, CorrelationID: "corr-" + messageID,
		UserID: "svc", Ack: ack, ContentType: "text/plain", ContentEncoding: "utf-8", Properties: props, Body: []byte("body " + messageID)}, time.Hour)
	if err != nil {
		tb.Fatalf("SendC2D %s: %v", messageID, err)
	}
	return m
}

// feedbackOf returns the feedback records' message ids and statuses.
func (e *env) feedbackOf(tb testing.TB) map[string]string {
	tb.Helper()
	fb, err := e.hub.Feedback()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fb {
		out[f.OriginalMessageID] = f.StatusCode
	}
	return out
}

// pendingOf returns the queue's message ids and delivery counts.
func (e *env) pendingOf(tb testing.TB, deviceID string) map[string]int {
	tb.Helper()
	ms, err := e.hub.PendingC2D(deviceID)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range ms {
		out[m.MessageID] = m.DeliveryCount
	}
	return out
}

// TestDeviceC2D: messages queued before and after the device attaches its
// receiver arrive with their properties, the lock token as delivery tag
// (in .NET Guid byte order) and the delivery count; each outcome feeds
// the queue and the feedback as the hub's other transports do.
func TestDeviceC2D(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "c2d"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	queued := e.sendC2D(t, id.DeviceID, "accept-me", "full", map[string]string{"color": "deep blue", "expr": "a+b=c"})
	rcv := dev.receiver(t, "messages/devicebound", &goamqp.ReceiverOptions{Credit: 10})

	m := receive(t, rcv)
	pending, _ := e.hub.PendingC2D(id.DeviceID)
	if len(pending) != 1 {
		t.Fatalf("pending: %v", pending)
	}
	token := pending[0].LockToken
	if got := dotNetGUID(m.DeliveryTag); got != token {
		t.Errorf("delivery tag reads as lock token %s, want %s", got, token)
	}
	if m.Properties == nil || m.Properties.MessageID != "accept-me" || m.Properties.CorrelationID != "corr-accept-me" ||
		string(m.Properties.UserID) != "svc" || *m.Properties.To != "/devices/c2d/messages/deviceBound" ||
		*m.Properties.ContentType != "text/plain" || *m.Properties.ContentEncoding != "utf-8" ||
		!m.Properties.AbsoluteExpiryTime.Equal(queued.ExpiryTime.Truncate(time.Millisecond)) {
		t.Errorf("properties: %+v", m.Properties)
	}
	wantApp := map[string]any{"color": "deep blue", "expr": "a+b=c", "iothub-ack": "full"}
	if diff := cmp.Diff(wantApp, m.ApplicationProperties); diff != "" {
		t.Errorf("application properties (-want +got):\n%s", diff)
	}
	if n, ok := m.Annotations["iothub-deliverycount"].(uint8); !ok || n != 1 {
		t.Errorf("iothub-deliverycount %#v, want ubyte 1", m.Annotations["iothub-deliverycount"])
	}
	if seq, ok := m.Annotations["x-opt-sequence-number"].(uint64); !ok || seq != queued.Seq {
		t.Errorf("x-opt-sequence-number %#v, want ulong %d", m.Annotations["x-opt-sequence-number"], queued.Seq)
	}
	if et, ok := m.Annotations["iothub-enqueuedtime"].(time.Time); !ok || !et.Equal(queued.EnqueuedTime.Truncate(time.Millisecond)) {
		t.Errorf("iothub-enqueuedtime %#v, want %v", m.Annotations["iothub-enqueuedtime"], queued.EnqueuedTime)
	}
	if string(m.GetData()) != "body accept-me" {
		t.Errorf("body %q", m.GetData())
	}
	if err := rcv.AcceptMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the accepted message to complete", func() bool { return len(e.pendingOf(t, id.DeviceID)) == 0 })
	if got := e.feedbackOf(t); got["accept-me"] != hub.FeedbackSuccess {
		t.Errorf("feedback %v, want Success for accept-me", got)
	}

	// Sent while the device listens; rejected.
	e.sendC2D(t, id.DeviceID, "reject-me", "negative", nil)
	m = receive(t, rcv)
	if err := rcv.RejectMessage(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the rejected message to leave the queue", func() bool { return len(e.pendingOf(t, id.DeviceID)) == 0 })
	if got := e.feedbackOf(t); got["reject-me"] != hub.FeedbackRejected {
		t.Errorf("feedback %v, want Rejected for reject-me", got)
	}

	// Released and modified are abandon: delivered again, counted.
	e.sendC2D(t, id.DeviceID, "abandon-me", "none", nil)
	m = receive(t, rcv)
	first := m.DeliveryTag
	if err := rcv.ReleaseMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	m = receive(t, rcv)
	if m.Properties.MessageID != "abandon-me" || m.Annotations["iothub-deliverycount"] != uint8(2) || m.Header == nil || m.Header.DeliveryCount != 1 {
		t.Fatalf("after release: got %v count %v header %+v, want abandon-me delivered a second time", m.Properties.MessageID, m.Annotations["iothub-deliverycount"], m.Header)
	}
	if string(m.DeliveryTag) == string(first) {
		t.Error("a redelivery kept its lock token")
	}
	if err := rcv.ModifyMessage(ctxT(t), m, &goamqp.ModifyMessageOptions{DeliveryFailed: true}); err != nil {
		t.Fatal(err)
	}
	m = receive(t, rcv)
	if m.Annotations["iothub-deliverycount"] != uint8(3) {
		t.Fatalf("after modify: delivery count %v, want 3", m.Annotations["iothub-deliverycount"])
	}
	if err := rcv.AcceptMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the queue to empty", func() bool { return len(e.pendingOf(t, id.DeviceID)) == 0 })
	if _, ok := e.feedbackOf(t)["abandon-me"]; ok {
		t.Error("feedback for an ack=none message")
	}
}

// TestDeviceC2DUnsettled: a delivery the device holds when its link
// detaches goes back to the queue and comes again on its next link, with
// a higher delivery count; while no C2D link is attached nothing is
// delivered; MaxDeliveryCount abandons dead-letter the message.
func TestDeviceC2DUnsettled(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "holder"}
	dev := e.connectDevice(t, viaPlain, id, e.addDevice(t, id.DeviceID))
	// An events link keeps the device connected between C2D links.
	dev.sender(t, "messages/events", nil)
	e.sendC2D(t, id.DeviceID, "held", "full", nil)
	rcv := dev.receiver(t, "messages/devicebound", nil)
	receive(t, rcv)
	if err := rcv.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the held message to become deliverable", func() bool {
		ms, _ := e.hub.PendingC2D(id.DeviceID)
		return len(ms) == 1 && ms[0].LockToken == ""
	})
	if got := e.pendingOf(t, id.DeviceID); got["held"] != 1 {
		t.Fatalf("queue %v, want held counted once", got)
	}
	rcv = dev.receiver(t, "messages/devicebound", nil)
	for i := 2; i <= hub.MaxDeliveryCount; i++ {
		m := receive(t, rcv)
		if m.Annotations["iothub-deliverycount"] != uint8(i) {
			t.Fatalf("delivery %d: count %v", i, m.Annotations["iothub-deliverycount"])
		}
		if err := rcv.ReleaseMessage(ctxT(t), m); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "the message to be dead-lettered", func() bool { return len(e.pendingOf(t, id.DeviceID)) == 0 })
	if got := e.feedbackOf(t)["held"]; got != hub.FeedbackDeliveryCountExceeded {
		t.Errorf("feedback %q, want DeliveryCountExceeded", got)
	}
	nothingOn(t, rcv, "after dead-lettering")
}

// TestDeviceC2DRefusals: C2D is the device's own: a receiver needs its
// claim, a module has no C2D node, a sender is the wrong role.
func TestDeviceC2DRefusals(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "other")
	id := hub.Identity{DeviceID: "me"}
	dev := e.connectDevice(t, viaTLS, id, e.addDevice(t, id.DeviceID))
	wantCondition(t, "another device's C2D", attachErr(t, dev.sess, "/devices/other/messages/devicebound", nil), goamqp.ErrCondUnauthorizedAccess, "other")
	wantCondition(t, "a module's C2D", attachErr(t, dev.sess, "/devices/me/modules/m/messages/devicebound", nil), goamqp.ErrCondNotFound, "")
	wantCondition(t, "a sender to C2D", senderAttachErr(t, dev.sess, "/devices/me/messages/devicebound"), goamqp.ErrCondNotAllowed, "receiver")
	wantCondition(t, "a receiver from a device's events", attachErr(t, dev.sess, "/devices/me/messages/events", nil), goamqp.ErrCondNotAllowed, "sender")
}

// TestLockTokenTag: every hub lock token round-trips through its delivery
// tag, which is the token in .NET Guid byte order.
func TestLockTokenTag(t *testing.T) {
	const token = "00112233-4455-6677-8899-aabbccddeeff"
	tag := lockTag(token)
	want := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if !bytes.Equal(tag, want) {
		t.Fatalf("tag % x, want % x (new Guid(tag).ToString() in .NET is the token)", tag, want)
	}
	for range 100 {
		m := &hub.C2DMessage{LockToken: uuid.New()}
		if got := dotNetGUID(lockTag(m.LockToken)); got != m.LockToken {
			t.Fatalf("%s round-trips to %s", m.LockToken, got)
		}
	}
}
