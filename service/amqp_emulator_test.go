// SPDX-License-Identifier: MIT

package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// Tests of the AMQP operations (cloud-to-device send, feedback, purge)
// against the in-process emulator over real sockets: AMQP over WebSockets
// on the HTTPS port (what a HostName with a port gets) and AMQP over TLS on
// the emulator's AMQP port (WithAMQPAddr).

type amqpTransport struct {
	name string
	opts func(srv *emulator.Server) []service.Option
}

var amqpTransports = []amqpTransport{
	{"websockets", func(*emulator.Server) []service.Option { return nil }},
	{"amqps", func(srv *emulator.Server) []service.Option {
		return []service.Option{service.WithAMQPAddr(srv.AMQPAddr())}
	}},
}

// amqpClient returns a client of srv's policy connection string cs (the
// owner's when empty), closed with the test.
func amqpClient(t *testing.T, srv *emulator.Server, cs string, opts ...service.Option) *service.Client {
	t.Helper()
	if cs == "" {
		cs = srv.ConnectionString()
	}
	c, err := service.NewFromConnectionString(cs, append([]service.Option{service.WithRootCAs(srv.CAPool()), service.WithoutRetries()}, opts...)...)
	if err != nil {
		t.Fatalf("NewFromConnectionString: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAMQPSendC2D(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := emulator.RunT(t)
			createDevice(t, srv, "dev+1#a?b")
			c := amqpClient(t, srv, "", tr.opts(srv)...)
			ctx := testCtx(t)

			m := &service.C2DMessage{
				Body: []byte("turn on"), MessageID: "m1", CorrelationID: "c1", UserID: "u1",
				Ack: service.AckFull, ContentType: "text/plain", ContentEncoding: "utf-8",
				TTL: 90 * time.Minute, Properties: map[string]string{"room": "kitchen", "level": ""},
			}
			if err := c.SendC2D(ctx, "dev+1#a?b", m); err != nil {
				t.Fatalf("SendC2D: %v", err)
			}
			// A UUID-looking id travels as an AMQP uuid, as Node sends it,
			// and comes back in the same form.
			const id = "6f1e7d36-3bd1-4c3b-9a5e-0c3b2f1d9e4a"
			if err := c.SendC2D(ctx, "dev+1#a?b", &service.C2DMessage{MessageID: id, CorrelationID: id}); err != nil {
				t.Fatalf("SendC2D with a UUID id: %v", err)
			}
			expiry := time.Now().Add(3 * time.Hour).Truncate(time.Millisecond)
			if err := c.SendC2D(ctx, "dev+1#a?b", &service.C2DMessage{Body: []byte{0, 1, 2}, ExpiryTime: expiry}); err != nil {
				t.Fatalf("SendC2D with an expiry time: %v", err)
			}
			pending, err := srv.PendingC2D("dev+1#a?b")
			if err != nil {
				t.Fatal(err)
			}
			want := []*emulator.C2DMessage{
				{DeviceID: "dev+1#a?b", MessageID: "m1", CorrelationID: "c1", UserID: "u1", Ack: "full",
					ContentType: "text/plain", ContentEncoding: "utf-8",
					Properties: map[string]string{"room": "kitchen", "level": ""}, Body: []byte("turn on")},
				{DeviceID: "dev+1#a?b", MessageID: id, CorrelationID: id, Ack: "none", Body: []byte{}},
				{DeviceID: "dev+1#a?b", Ack: "none", Body: []byte{0, 1, 2}},
			}
			opts := cmpopts.IgnoreFields(emulator.C2DMessage{}, "EnqueuedTime", "ExpiryTime")
			if diff := cmp.Diff(want, pending, opts, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("queued messages (-want +got):\n%s", diff)
			}
			// The TTL travels as an absolute expiry from the send.
			if ttl := pending[0].ExpiryTime.Sub(pending[0].EnqueuedTime); ttl > 90*time.Minute || ttl < 90*time.Minute-5*time.Second {
				t.Errorf("expiry - enqueued = %v, want 1h30m less the time in transit", ttl)
			}
			if ttl := pending[1].ExpiryTime.Sub(pending[1].EnqueuedTime); ttl != time.Hour {
				t.Errorf("default TTL %v, want 1h", ttl)
			}
			if d := pending[2].ExpiryTime.Sub(expiry); d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Errorf("expiry %v, want %v", pending[2].ExpiryTime, expiry)
			}
		})
	}
}

// sentinels the error tests check against: exactly one may match.
var amqpSentinels = []error{service.ErrBadRequest, service.ErrUnauthorized, service.ErrForbidden, service.ErrNotFound,
	service.ErrMessageTooLarge, service.ErrThrottled, service.ErrServerError, service.ErrServiceUnavailable}

func checkAMQPError(t *testing.T, err error, op string, status, code int, condition string, sentinel error) {
	t.Helper()
	var e *service.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want a *service.Error", err, err)
	}
	if e.Op != op || e.StatusCode != status || e.Code != code || e.Condition != condition || e.Message == "" {
		t.Errorf("got Op %q status %d code %d condition %q message %q; want %q %d %d %q and a message",
			e.Op, e.StatusCode, e.Code, e.Condition, e.Message, op, status, code, condition)
	}
	for _, s := range amqpSentinels {
		if got := errors.Is(err, s); got != (s == sentinel) {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == sentinel)
		}
	}
}

func TestAMQPSendC2DErrors(t *testing.T) {
	srv := emulator.RunT(t)
	createDevice(t, srv, "dev1")
	c := amqpClient(t, srv, "")
	ctx := testCtx(t)
	tests := []struct {
		name      string
		id        string
		m         *service.C2DMessage
		status    int
		code      int
		condition string
		sentinel  error
	}{
		{"unknown device", "nobody", &service.C2DMessage{}, 404, service.CodeDeviceNotFound, "amqp:not-found", service.ErrNotFound},
		{"bad ack", "dev1", &service.C2DMessage{Ack: "sometimes"}, 400, service.CodeArgumentInvalid, "com.microsoft:argument-error", service.ErrBadRequest},
		{"TTL over 48h", "dev1", &service.C2DMessage{TTL: 49 * time.Hour}, 400, service.CodeArgumentInvalid, "com.microsoft:argument-error", service.ErrBadRequest},
		{"too large", "dev1", &service.C2DMessage{Body: make([]byte, 64*1024+1)}, 413, service.CodeMessageTooLarge, "amqp:link:message-size-exceeded", service.ErrMessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SendC2D(ctx, tt.id, tt.m)
			checkAMQPError(t, err, "SendC2D", tt.status, tt.code, tt.condition, tt.sentinel)
			// A refused message leaves the link working.
			if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{MessageID: "after " + tt.name}); err != nil {
				t.Fatalf("SendC2D after the refusal: %v", err)
			}
		})
	}
	pending, _ := srv.PendingC2D("dev1")
	if len(pending) != len(tests) {
		t.Fatalf("%d messages queued, want only the %d good ones", len(pending), len(tests))
	}
	for range 50 - len(pending) {
		if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.SendC2D(ctx, "dev1", &service.C2DMessage{Body: []byte("one too many")})
	checkAMQPError(t, err, "SendC2D", 403, service.CodeDeviceMaximumQueueDepth, "amqp:resource-limit-exceeded", service.ErrForbidden)
	var e *service.Error
	if errors.As(err, &e) && e.CodeName != "DeviceMaximumQueueDepthExceeded" {
		t.Errorf("CodeName %q, want DeviceMaximumQueueDepthExceeded", e.CodeName)
	}

	if err := c.SendC2D(ctx, "", &service.C2DMessage{}); err == nil || !strings.Contains(err.Error(), "device id is required") {
		t.Errorf("SendC2D without a device id: %v", err)
	}
	if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{TTL: -time.Second}); err == nil || !strings.Contains(err.Error(), "negative time to live") {
		t.Errorf("SendC2D with a negative TTL: %v", err)
	}
}

// TestAMQPUnauthorized checks the two refusals a client meets: a key the
// hub does not know (the put-token is answered 401) and a policy without
// ServiceConnect (the link is refused with amqp:unauthorized-access).
func TestAMQPUnauthorized(t *testing.T) {
	srv := emulator.RunT(t)
	createDevice(t, srv, "dev1")
	ctx := testCtx(t)
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	cs.SharedAccessKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ=="
	for _, tr := range amqpTransports {
		t.Run("wrong key/"+tr.name, func(t *testing.T) {
			c := amqpClient(t, srv, cs.String(), tr.opts(srv)...)
			err := c.SendC2D(ctx, "dev1", &service.C2DMessage{})
			var e *service.Error
			if !errors.Is(err, service.ErrUnauthorized) || !errors.As(err, &e) || e.StatusCode != 401 || e.Op != "SendC2D" {
				t.Errorf("SendC2D: %v; want a 401 matching ErrUnauthorized", err)
			}
			r := c.FeedbackReceiver()
			defer r.Close()
			if _, err := r.Receive(ctx); !errors.Is(err, service.ErrUnauthorized) {
				t.Errorf("feedback Receive: %v; want ErrUnauthorized", err)
			}
			if _, err := c.NewEventReceiver(ctx, service.EventReceiverOptions{}); !errors.Is(err, service.ErrUnauthorized) {
				t.Errorf("NewEventReceiver: %v; want ErrUnauthorized", err)
			}
		})
	}
	t.Run("no ServiceConnect", func(t *testing.T) {
		c := amqpClient(t, srv, srv.PolicyConnectionString("registryRead"))
		err := c.SendC2D(ctx, "dev1", &service.C2DMessage{})
		checkAMQPError(t, err, "SendC2D", 401, service.CodeIotHubUnauthorizedAccess, "amqp:unauthorized-access", service.ErrUnauthorized)
		r := c.FeedbackReceiver()
		defer r.Close()
		_, err = r.Receive(ctx)
		checkAMQPError(t, err, "ReceiveFeedback", 401, service.CodeIotHubUnauthorizedAccess, "amqp:unauthorized-access", service.ErrUnauthorized)
	})
	if pending, _ := srv.PendingC2D("dev1"); len(pending) != 0 {
		t.Errorf("refused clients queued %d messages", len(pending))
	}
}

// sendAcked queues messages that ask for full feedback and has the device
// settle each over HTTPS: completed, or rejected where reject says so.
func sendAcked(t *testing.T, ctx context.Context, srv *emulator.Server, c *service.Client, cs string, ids []string, reject []bool) {
	t.Helper()
	for _, id := range ids {
		if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{MessageID: id, Ack: service.AckFull}); err != nil {
			t.Fatalf("SendC2D(%s): %v", id, err)
		}
	}
	dh := newDeviceHTTP(t, srv, cs)
	for _, r := range reject {
		dh.receiveAndSettle(ctx, r)
	}
}

// receiveRecords receives batches until n records arrived, completing
// each batch.
func receiveRecords(t *testing.T, ctx context.Context, r *service.FeedbackReceiver, n int) []service.Feedback {
	t.Helper()
	var got []service.Feedback
	for len(got) < n {
		b, err := r.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive after %d records: %v", len(got), err)
		}
		got = append(got, b.Records...)
		if err := r.Complete(ctx, b); err != nil {
			t.Fatalf("Complete: %v", err)
		}
	}
	return got
}

func TestAMQPFeedbackReceiver(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := emulator.RunT(t)
			cs := createDevice(t, srv, "dev1")
			c := amqpClient(t, srv, "", tr.opts(srv)...)
			ctx := testCtx(t)
			dev, err := srv.Device("dev1")
			if err != nil {
				t.Fatal(err)
			}
			r := c.FeedbackReceiver()
			defer r.Close()

			sendAcked(t, ctx, srv, c, cs, []string{"ok", "no"}, []bool{false, true})
			b, err := r.Receive(ctx)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			want := []service.Feedback{
				{OriginalMessageID: "ok", DeviceGenerationID: dev.GenerationID, DeviceID: "dev1", StatusCode: service.FeedbackSuccess, Description: "Success"},
				{OriginalMessageID: "no", DeviceGenerationID: dev.GenerationID, DeviceID: "dev1", StatusCode: service.FeedbackRejected, Description: "Message rejected"},
			}
			got := b.Records
			if len(got) < len(want) {
				// The hub may batch them apart.
				if err := r.Complete(ctx, b); err != nil {
					t.Fatal(err)
				}
				got = append(got, receiveRecords(t, ctx, r, len(want)-len(got))...)
				b = nil
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(service.Feedback{}, "EnqueuedTimeUTC")); diff != "" {
				t.Fatalf("records (-want +got):\n%s", diff)
			}
			if b == nil {
				return
			}
			if b.MessageID == "" || b.LockToken == "" || b.EnqueuedTime.IsZero() || b.DeliveryCount != 0 {
				t.Errorf("batch message id %q lock %q enqueued %v delivery count %d; want ids, a time and 0", b.MessageID, b.LockToken, b.EnqueuedTime, b.DeliveryCount)
			}

			// Abandon: it comes again, delivered once more.
			if err := r.Abandon(ctx, b); err != nil {
				t.Fatalf("Abandon: %v", err)
			}
			again, err := r.Receive(ctx)
			if err != nil {
				t.Fatalf("Receive after Abandon: %v", err)
			}
			if again.MessageID != b.MessageID || again.DeliveryCount != 1 {
				t.Errorf("after Abandon got message %q delivery count %d, want %q and 1", again.MessageID, again.DeliveryCount, b.MessageID)
			}
			// Complete: gone from the queue, which HTTPS sees too.
			if err := r.Complete(ctx, again); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if err := r.Complete(ctx, again); err == nil {
				t.Error("completing a batch twice succeeded")
			}
			if hb, err := c.ReceiveFeedback(ctx); err != nil || hb != nil {
				t.Errorf("ReceiveFeedback after Complete = %+v, %v; want an empty queue", hb, err)
			}

			// Reject: dead-lettered, never delivered again.
			sendAcked(t, ctx, srv, c, cs, []string{"third"}, []bool{false})
			third, err := r.Receive(ctx)
			if err != nil || len(third.Records) != 1 || third.Records[0].OriginalMessageID != "third" {
				t.Fatalf("Receive: %+v, %v; want the record of third", third, err)
			}
			if err := r.Reject(ctx, third); err != nil {
				t.Fatalf("Reject: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if b, err := r.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Receive after Reject = %+v, %v; want nothing until the deadline", b, err)
			}
		})
	}
}

func TestAMQPFeedbackReceiverClose(t *testing.T) {
	srv := emulator.RunT(t)
	c := amqpClient(t, srv, "")
	ctx := testCtx(t)
	r := c.FeedbackReceiver()
	done := make(chan error, 1)
	go func() {
		_, err := r.Receive(ctx)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it attach and wait
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, service.ErrClosed) {
			t.Errorf("Receive during Close: %v; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receive did not return after Close")
	}
	if _, err := r.Receive(ctx); !errors.Is(err, service.ErrClosed) {
		t.Errorf("Receive after Close: %v; want ErrClosed", err)
	}
	if err := r.Complete(ctx, &service.FeedbackBatch{}); err == nil {
		t.Error("Complete of a batch this receiver never received succeeded")
	}

	// Closing the client closes its AMQP side; REST goes on.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendC2D(ctx, "dev1", &service.C2DMessage{}); !errors.Is(err, service.ErrClosed) {
		t.Errorf("SendC2D after Close: %v; want ErrClosed", err)
	}
	if _, err := c.FeedbackReceiver().Receive(ctx); !errors.Is(err, service.ErrClosed) {
		t.Errorf("Receive on a closed client: %v; want ErrClosed", err)
	}
	if _, err := c.GetServiceStatistics(ctx); err != nil {
		t.Errorf("a REST call after Close: %v", err)
	}
}

// TestHTTPSFeedback settles the feedback queue over HTTPS, as Python's
// IoTHubHttpRuntimeManager does.
func TestHTTPSFeedback(t *testing.T) {
	srv := emulator.RunT(t)
	cs := createDevice(t, srv, "dev1")
	c := amqpClient(t, srv, "")
	ctx := testCtx(t)
	if b, err := c.ReceiveFeedback(ctx); err != nil || b != nil {
		t.Fatalf("ReceiveFeedback of an empty queue = %+v, %v; want nil, nil", b, err)
	}
	sendAcked(t, ctx, srv, c, cs, []string{"m1"}, []bool{false})
	b, err := c.ReceiveFeedback(ctx)
	if err != nil || b == nil {
		t.Fatalf("ReceiveFeedback = %v, %v", b, err)
	}
	if len(b.Records) != 1 || b.Records[0].OriginalMessageID != "m1" || b.Records[0].StatusCode != service.FeedbackSuccess {
		t.Errorf("records %+v, want m1's Success", b.Records)
	}
	if b.LockToken == "" || b.MessageID == "" || b.EnqueuedTime.IsZero() || b.DeliveryCount != 1 {
		t.Errorf("lock %q message id %q enqueued %v delivery count %d; want all set, count 1", b.LockToken, b.MessageID, b.EnqueuedTime, b.DeliveryCount)
	}
	if err := c.AbandonFeedback(ctx, b.LockToken); err != nil {
		t.Fatalf("AbandonFeedback: %v", err)
	}
	again, err := c.ReceiveFeedback(ctx)
	if err != nil || again == nil || again.MessageID != b.MessageID || again.DeliveryCount != 2 {
		t.Fatalf("ReceiveFeedback after abandon = %+v, %v; want the same batch, delivered twice", again, err)
	}
	if err := c.CompleteFeedback(ctx, again.LockToken); err != nil {
		t.Fatalf("CompleteFeedback: %v", err)
	}
	err = c.CompleteFeedback(ctx, again.LockToken)
	if !errors.Is(err, service.ErrPreconditionFailed) && !errors.Is(err, service.ErrNotFound) {
		t.Errorf("completing twice: %v; want a lock-lost or not-found error", err)
	}
	if b, err := c.ReceiveFeedback(ctx); err != nil || b != nil {
		t.Errorf("ReceiveFeedback after complete = %+v, %v; want an empty queue", b, err)
	}
	if err := c.CompleteFeedback(ctx, ""); err == nil {
		t.Error("CompleteFeedback without a lock token succeeded")
	}
}

func TestPurgeC2DQueue(t *testing.T) {
	srv := emulator.RunT(t)
	createDevice(t, srv, "dev1")
	c := amqpClient(t, srv, "")
	ctx := testCtx(t)
	for _, m := range []*service.C2DMessage{{MessageID: "a", Ack: service.AckFull}, {MessageID: "b"}, {MessageID: "c", Ack: service.AckPositive}} {
		if err := c.SendC2D(ctx, "dev1", m); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.PurgeC2DQueue(ctx, "dev1")
	if err != nil {
		t.Fatalf("PurgeC2DQueue: %v", err)
	}
	if diff := cmp.Diff(&service.PurgeResult{DeviceID: "dev1", TotalMessagesPurged: 3}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if pending, _ := srv.PendingC2D("dev1"); len(pending) != 0 {
		t.Errorf("%d messages left after the purge", len(pending))
	}
	// Only the message that asked for negative outcomes reports the purge.
	r := c.FeedbackReceiver()
	defer r.Close()
	got := receiveRecords(t, ctx, r, 1)
	if len(got) != 1 || got[0].OriginalMessageID != "a" || got[0].StatusCode != service.FeedbackPurged {
		t.Errorf("feedback %+v, want a's Purged", got)
	}
	if res, err := c.PurgeC2DQueue(ctx, "dev1"); err != nil || res.TotalMessagesPurged != 0 {
		t.Errorf("purging an empty queue = %+v, %v; want 0", res, err)
	}
	_, err = c.PurgeC2DQueue(ctx, "nobody")
	var e *service.Error
	if !errors.Is(err, service.ErrNotFound) || !errors.As(err, &e) || e.Code != service.CodeDeviceNotFound {
		t.Errorf("purging an unknown device: %v; want 404001", err)
	}
}

// fakeStore is a blob store that answers what the hub asks of it for a
// file upload: the container's creation and the blob's properties.
func fakeStore(t *testing.T) (connString, caFile string) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Last-Modified", "Thu, 02 May 2024 09:00:00 GMT")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := newTLSServer(t, h)
	return "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=" +
		srv.URL + "/devstoreaccount1;", srv.caFile
}

func TestAMQPFileNotificationReceiver(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr.name, func(t *testing.T) {
			storeCS, storeCA := fakeStore(t)
			srv := emulator.RunT(t, emulator.WithStorage(storeCS, storeCA))
			dh := newDeviceHTTP(t, srv, createDevice(t, srv, "cam1"))
			c := amqpClient(t, srv, "", tr.opts(srv)...)
			ctx := testCtx(t)
			r := c.FileNotificationReceiver()
			defer r.Close()

			dh.upload(ctx, "a.txt")
			n, err := r.Receive(ctx)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if n.DeviceID != "cam1" || n.BlobName != "cam1/a.txt" || n.BlobSizeInBytes != 5 || !strings.HasSuffix(n.BlobURI, "/cam1/a.txt") ||
				n.EnqueuedTime.IsZero() || !n.LastUpdatedTime.Equal(time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)) {
				t.Errorf("notification %+v", n)
			}
			if err := r.Abandon(ctx, n); err != nil {
				t.Fatalf("Abandon: %v", err)
			}
			again, err := r.Receive(ctx)
			if err != nil || again.BlobName != n.BlobName {
				t.Fatalf("Receive after Abandon = %+v, %v; want the same notification", again, err)
			}
			if err := r.Complete(ctx, again); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			dh.upload(ctx, "b.txt")
			b, err := r.Receive(ctx)
			if err != nil || b.BlobName != "cam1/b.txt" {
				t.Fatalf("Receive = %+v, %v; want b.txt's notification (a.txt's was completed)", b, err)
			}
			if err := r.Reject(ctx, b); err != nil {
				t.Fatalf("Reject: %v", err)
			}
			waitFor(t, "the rejected notification to leave the queue", func() bool {
				left, err := srv.FileNotifications()
				return err == nil && len(left) == 0
			})
			if err := r.Complete(ctx, &service.FileNotification{}); err == nil {
				t.Error("Complete of a notification never received succeeded")
			}
		})
	}
}

// upload has the device upload a (pretend) blob and report success, which
// queues a file-upload notification.
func (d *deviceHTTP) upload(ctx context.Context, name string) {
	d.t.Helper()
	resp := d.post(ctx, "/devices/"+d.id+"/files", `{"blobName":"`+name+`"}`)
	var up struct {
		CorrelationID string `json:"correlationId"`
	}
	decodeJSON(d.t, resp, &up)
	d.post(ctx, "/devices/"+d.id+"/files/notifications", `{"correlationId":"`+up.CorrelationID+`","isSuccess":true,"statusCode":200,"statusDescription":"ok"}`)
}

func (d *deviceHTTP) post(ctx context.Context, path, body string) []byte {
	d.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+d.srv.HTTPSAddr()+path+"?api-version=2021-04-12", strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode >= 300 {
		d.t.Fatalf("POST %s: status %d: %s", path, resp.StatusCode, buf.String())
	}
	return buf.Bytes()
}

// tlsServer is an httptest TLS server whose certificate is written to
// caFile.
type tlsServer struct {
	*httptest.Server
	caFile string
}

func newTLSServer(t *testing.T, h http.Handler) *tlsServer {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "store-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tlsServer{Server: srv, caFile: caFile}
}

func decodeJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
