// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// serviceConn is a connection that has put the owner's token.
func (e *env) serviceConn(tb testing.TB, via transport) *goamqp.Conn {
	tb.Helper()
	c := e.dial(tb, via, nil)
	newCBS(tb, c).mustPut(tb, hostName, e.policyToken(tb, "iothubowner", hostName, e.clock.Now().Add(time.Hour)))
	return c
}

func c2dSender(tb testing.TB, c *goamqp.Conn) *goamqp.Sender {
	tb.Helper()
	snd, err := newSession(tb, c).NewSender(ctxT(tb), "/messages/devicebound", nil)
	if err != nil {
		tb.Fatalf("attach /messages/devicebound: %v", err)
	}
	return snd
}

func c2dTo(id string) *string {
	s := "/devices/" + id + "/messages/devicebound"
	return &s
}

// sendOutcome sends m and returns nil when it was accepted, or the
// rejection's error.
func sendOutcome(tb testing.TB, snd *goamqp.Sender, m *goamqp.Message) *goamqp.Error {
	tb.Helper()
	err := snd.Send(ctxT(tb), m, nil)
	if err == nil {
		return nil
	}
	var ae *goamqp.Error
	if errors.As(err, &ae) {
		return ae
	}
	tb.Fatalf("send: %v", err)
	return nil
}

func TestC2DSendOnEveryTransport(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "dev#1") // an id that needs URL encoding
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			snd := c2dSender(t, e.serviceConn(t, tr.via))
			if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{[]byte(tr.name)},
				Properties: &goamqp.MessageProperties{To: c2dTo("dev%231"), MessageID: "m-" + tr.name}}); err != nil {
				t.Fatalf("send: %v", err)
			}
		})
	}
	// Accepted means queued: the queue holds them, in order.
	ms, err := e.hub.PendingC2D("dev#1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.MessageID+"="+string(m.Body))
	}
	want := []string{"m-plain=plain", "m-tls=tls", "m-websocket=websocket", "m-servicebus-websocket=servicebus-websocket"}
	if !cmp.Equal(got, want) {
		t.Errorf("queue %v, want %v", got, want)
	}
}

// TestC2DMessageFields: what a message carries into the device's queue.
func TestC2DMessageFields(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Millisecond)
	clk := clock.At(start)
	e := newEnv(t, withClock(clk))
	e.addDevice(t, "d1")
	snd := c2dSender(t, e.serviceConn(t, viaPlain))
	uid := goamqp.UUID{0x4d, 0x8c, 0xa2, 0x3a, 0x0c, 0x61, 0x4e, 0x4f, 0x9a, 0x9b, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab}
	user := []byte("backend")
	cases := []struct {
		id     any
		wantID string
	}{
		{uid, "4d8ca23a-0c61-4e4f-9a9b-0123456789ab"},
		{uint64(1234567), "1234567"},
		{[]byte{0xca, 0xfe}, "cafe"},
		{"plain-string", "plain-string"},
	}
	for i, tc := range cases {
		m := &goamqp.Message{
			Data: [][]byte{[]byte("part1-"), []byte("part2")},
			Properties: &goamqp.MessageProperties{
				To: c2dTo("d1"), MessageID: tc.id, CorrelationID: uid, UserID: user,
				ContentType: ptr("application/json"), ContentEncoding: ptr("utf-8"),
				AbsoluteExpiryTime: ptr(start.Add(time.Duration(i+1) * time.Minute)),
			},
			ApplicationProperties: map[string]any{"iothub-ack": "full", "alert": "high", "count": int32(3), "ok": true},
		}
		if err := sendOutcome(t, snd, m); err != nil {
			t.Fatalf("send id %T: %v", tc.id, err)
		}
	}
	ms, err := e.hub.PendingC2D("d1")
	if err != nil || len(ms) != len(cases) {
		t.Fatalf("queue: %d messages, %v; want %d", len(ms), err, len(cases))
	}
	for i, m := range ms {
		want := hub.C2DMessage{
			DeviceID: "d1", MessageID: cases[i].wantID, CorrelationID: "4d8ca23a-0c61-4e4f-9a9b-0123456789ab", UserID: "backend",
			To: "/devices/d1/messages/deviceBound", Ack: "full", ContentType: "application/json", ContentEncoding: "utf-8",
			EnqueuedTime: start, ExpiryTime: start.Add(time.Duration(i+1) * time.Minute),
			Properties: map[string]string{"alert": "high", "count": "3", "ok": "true"}, Body: []byte("part1-part2"),
		}
		got := *m
		got.Seq = 0
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("message %d (-want +got):\n%s", i, diff)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestC2DRefusals(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "full")
	e.addDevice(t, "d1")
	for i := range hub.MaxC2DQueue {
		if _, err := e.hub.SendC2D(context.Background(), "full", &hub.C2DMessage{MessageID: fmt.Sprint(i), Body: []byte("x")}, 0); err != nil {
			t.Fatal(err)
		}
	}
	snd := c2dSender(t, e.serviceConn(t, viaTLS))
	msg := func(to string, body []byte, props map[string]any) *goamqp.Message {
		m := &goamqp.Message{Data: [][]byte{body}, ApplicationProperties: props, Properties: &goamqp.MessageProperties{}}
		if to != "" {
			m.Properties.To = &to
		}
		return m
	}
	tests := []struct {
		name string
		m    *goamqp.Message
		cond goamqp.ErrCond
		desc string
	}{
		{"unknown device", msg("/devices/ghost/messages/devicebound", []byte("x"), nil), goamqp.ErrCondNotFound, "ghost"},
		{"full queue", msg("/devices/full/messages/devicebound", []byte("x"), nil), goamqp.ErrCondResourceLimitExceeded, "50"},
		{"over 64 KB", msg("/devices/d1/messages/devicebound", bytes.Repeat([]byte("x"), 64*1024+1), nil), goamqp.ErrCondMessageSizeExceeded, "65536"},
		{"no to", msg("", []byte("x"), nil), "com.microsoft:argument-error", "no to property"},
		{"to elsewhere", msg("/devices/d1/messages/events", []byte("x"), nil), "com.microsoft:argument-error", "not /devices/{deviceId}/messages/devicebound"},
		{"to a module", msg("/devices/d1/modules/m1/messages/devicebound", []byte("x"), nil), "com.microsoft:argument-error", ""},
		{"bad ack", msg("/devices/d1/messages/devicebound", []byte("x"), map[string]any{"iothub-ack": "always"}), "com.microsoft:argument-error", "ack"},
		{"property of a list", msg("/devices/d1/messages/devicebound", []byte("x"), map[string]any{"l": []int32{1}}), "com.microsoft:argument-error", "strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCondition(t, tc.name, sendOutcome(t, snd, tc.m), tc.cond, tc.desc)
		})
	}
	// Refusals leave the link usable and store nothing.
	if err := sendOutcome(t, snd, msg("/devices/d1/messages/devicebound", []byte("after"), nil)); err != nil {
		t.Fatalf("a good message after the refusals: %v", err)
	}
	if ms, _ := e.hub.PendingC2D("d1"); len(ms) != 1 || string(ms[0].Body) != "after" {
		t.Errorf("d1's queue holds %d messages, want only the good one", len(ms))
	}
}

// TestC2DMultiFrame sends a message larger than the frame size: the
// transfer spans frames, and the message arrives whole.
func TestC2DMultiFrame(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "d1")
	snd := c2dSender(t, e.serviceConn(t, viaWebSocket))
	body := bytes.Repeat([]byte("0123456789abcdef"), 65000/16) // with the sections, more than one 64 KiB frame
	if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{body}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: "big"}}); err != nil {
		t.Fatalf("send: %v", err)
	}
	ms, _ := e.hub.PendingC2D("d1")
	if len(ms) != 1 || !bytes.Equal(ms[0].Body, body) {
		t.Fatalf("queue: %d messages; want the whole message", len(ms))
	}
}

func TestC2DAttach(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, viaPlain, nil)
	newCBS(t, c).mustPut(t, hostName, e.policyToken(t, "registryReadWrite", hostName, later()))
	s := newSession(t, c)
	wantCondition(t, "without ServiceConnect", senderAttachErr(t, s, "/messages/devicebound"), goamqp.ErrCondUnauthorizedAccess, "ServiceConnect")
	sc := newSession(t, e.serviceConn(t, viaPlain))
	wantCondition(t, "a receiver", attachErr(t, sc, "/messages/devicebound", nil), goamqp.ErrCondNotAllowed, "attach a sender")
	wantCondition(t, "a sender to feedback", senderAttachErr(t, sc, "/messages/serviceBound/feedback"), goamqp.ErrCondNotAllowed, "attach a receiver")
}

// feedbackRecord is one record of a feedback message's body.
type feedbackRecord struct {
	OriginalMessageID  string    `json:"originalMessageId"`
	DeviceGenerationID string    `json:"deviceGenerationId"`
	DeviceID           string    `json:"deviceId"`
	EnqueuedTimeUTC    time.Time `json:"enqueuedTimeUtc"`
	StatusCode         string    `json:"statusCode"`
	Description        string    `json:"description"`
}

// completeOverHTTPS receives the device's next message and completes (or
// rejects) it, as a device would.
func completeOverHTTPS(tb testing.TB, h *hub.Hub, deviceID string, complete bool) {
	tb.Helper()
	m, err := h.ReceiveC2D(context.Background(), deviceID, 0)
	if err != nil || m == nil {
		tb.Fatalf("ReceiveC2D: %v, %v", m, err)
	}
	if err := h.CompleteC2DLock(context.Background(), deviceID, m.LockToken, !complete); err != nil {
		tb.Fatal(err)
	}
}

func receiveFeedback(tb testing.TB, r *goamqp.Receiver) (*goamqp.Message, []feedbackRecord) {
	tb.Helper()
	m, err := r.Receive(ctxT(tb), nil)
	if err != nil {
		tb.Fatalf("receive feedback: %v", err)
	}
	var recs []feedbackRecord
	if err := json.Unmarshal(bytes.Join(m.Data, nil), &recs); err != nil {
		tb.Fatalf("feedback body %q: %v", m.Data, err)
	}
	return m, recs
}

func TestFeedbackReceiver(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "d1")
	d, _ := e.hub.GetDevice(context.Background(), "d1")
	c := e.serviceConn(t, viaTLS)
	snd := c2dSender(t, c)
	uid := goamqp.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	send := func(id any) {
		if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{[]byte("x")}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: id},
			ApplicationProperties: map[string]any{"iothub-ack": "full"}}); err != nil {
			t.Fatal(err)
		}
	}
	rcv, err := newSession(t, c).NewReceiver(ctxT(t), "/messages/serviceBound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A receiver already waiting is woken by feedback as it is queued.
	send(uid)
	completeOverHTTPS(t, e.hub, "d1", true)
	m, recs := receiveFeedback(t, rcv)
	if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != hub.FeedbackContentType ||
		string(m.Properties.UserID) != hostName {
		t.Errorf("feedback properties %+v; want content type %s and user-id %s", m.Properties, hub.FeedbackContentType, hostName)
	}
	if _, ok := m.Annotations["iothub-enqueuedtime"].(time.Time); !ok {
		t.Errorf("annotations %v: want iothub-enqueuedtime as a timestamp", m.Annotations)
	}
	want := []feedbackRecord{{OriginalMessageID: "01020304-0506-0708-090a-0b0c0d0e0f10", DeviceGenerationID: d.GenerationID, DeviceID: "d1",
		StatusCode: "Success", Description: "Success"}}
	if diff := cmp.Diff(want, recs, cmp.Comparer(func(a, b time.Time) bool { return true })); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// Released: it comes again, one delivery later.
	if err := rcv.ReleaseMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	m2, recs2 := receiveFeedback(t, rcv)
	if !cmp.Equal(recs2, recs) || m2.Header == nil || m2.Header.DeliveryCount != 1 {
		t.Errorf("after release: %v (header %+v); want the same records, delivery count 1", recs2, m2.Header)
	}
	// Accepted: it leaves the queue.
	if err := rcv.AcceptMessage(ctxT(t), m2); err != nil {
		t.Fatal(err)
	}
	// Rejected: dead-lettered, never again.
	send("rejected-one")
	completeOverHTTPS(t, e.hub, "d1", false)
	m3, recs3 := receiveFeedback(t, rcv)
	if len(recs3) != 1 || recs3[0].OriginalMessageID != "rejected-one" || recs3[0].StatusCode != "Rejected" {
		t.Errorf("records %+v; want Rejected feedback for rejected-one", recs3)
	}
	if err := rcv.RejectMessage(ctxT(t), m3, nil); err != nil {
		t.Fatal(err)
	}
	testEventually(t, "the queue to be empty", func() bool {
		fm, err := e.hub.ReceiveFeedback(context.Background(), time.Millisecond)
		return err == nil && fm == nil
	})
}

// TestFeedbackUnsettledComesBack: messages a receiver held when its link
// ended go back to the queue for the next receiver.
func TestFeedbackUnsettledComesBack(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "d1")
	c := e.serviceConn(t, viaPlain)
	snd := c2dSender(t, c)
	for i := range 3 {
		if err := sendOutcome(t, snd, &goamqp.Message{Data: [][]byte{[]byte("x")}, Properties: &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: fmt.Sprint(i)},
			ApplicationProperties: map[string]any{"iothub-ack": "positive"}}); err != nil {
			t.Fatal(err)
		}
		completeOverHTTPS(t, e.hub, "d1", true)
	}
	s := newSession(t, c)
	first, err := s.NewReceiver(ctxT(t), "/messages/serviceBound/feedback", &goamqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	_, recs := receiveFeedback(t, first)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want the 3 in one batch", len(recs))
	}
	if err := first.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	second, err := s.NewReceiver(ctxT(t), "/messages/serviceBound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, again := receiveFeedback(t, second)
	if !cmp.Equal(again, recs) {
		t.Errorf("second receiver got %v, want the unsettled batch %v", again, recs)
	}
}

// TestFeedbackOfExpiredMessages: a message that expires unread produces
// Expired feedback, which reaches a waiting receiver without a send to
// wake it.
func TestFeedbackOfExpiredMessages(t *testing.T) {
	start := time.Now().UTC()
	clk := clock.At(start)
	e := newEnv(t, withClock(clk))
	e.addDevice(t, "d1")
	c := e.serviceConn(t, viaPlain)
	exp := start.Add(time.Minute)
	if err := sendOutcome(t, c2dSender(t, c), &goamqp.Message{Data: [][]byte{[]byte("x")},
		Properties:            &goamqp.MessageProperties{To: c2dTo("d1"), MessageID: "short-lived", AbsoluteExpiryTime: &exp},
		ApplicationProperties: map[string]any{"iothub-ack": "negative"}}); err != nil {
		t.Fatal(err)
	}
	rcv, err := newSession(t, c).NewReceiver(ctxT(t), "/messages/serviceBound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(exp.Add(time.Second))
	_, recs := receiveFeedback(t, rcv)
	if len(recs) != 1 || recs[0].StatusCode != "Expired" || recs[0].OriginalMessageID != "short-lived" {
		t.Errorf("records %+v; want Expired feedback for short-lived", recs)
	}
}

func testEventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
