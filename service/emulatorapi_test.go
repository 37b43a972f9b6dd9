// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// Tests of the emulator-only API (ReadTelemetry, TelemetryHead,
// C2DFeedback) against the in-process emulator, with telemetry produced by
// the device package's MQTT client.

// connectDevice connects a device or module client with connection string
// cs to srv, closed with the test.
func connectDevice(t *testing.T, ctx context.Context, srv *emulator.Server, cs string) *device.Client {
	t.Helper()
	d, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		t.Fatalf("device.NewFromConnectionString: %v", err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func createDevice(t *testing.T, srv *emulator.Server, id string) string {
	t.Helper()
	cs, err := srv.CreateDevice(id)
	if err != nil {
		t.Fatalf("CreateDevice(%q): %v", id, err)
	}
	return cs
}

func send(t *testing.T, ctx context.Context, d *device.Client, m *device.Message) {
	t.Helper()
	if err := d.SendMessage(ctx, m); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
}

func TestEmulatorReadTelemetry(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	d := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))
	send(t, ctx, d, &device.Message{
		Body: []byte(`{"t":21.5}`), MessageID: "42", CorrelationID: "c1", ContentType: "application/json",
		ContentEncoding: "utf-8", Properties: map[string]string{"alert": "high", "a b": "c&d"},
	})
	send(t, ctx, d, &device.Message{Body: []byte{0xff, 0x00}})

	got, err := c.ReadTelemetry(ctx, service.TelemetryFilter{})
	if err != nil {
		t.Fatalf("ReadTelemetry: %v", err)
	}
	want := []*service.TelemetryMessage{
		{
			DeviceID: "dev1", ConnectionAuthMethod: "sas", Transport: "mqtt", MessageID: "42", CorrelationID: "c1",
			ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"alert": "high", "a b": "c&d"}, Body: []byte(`{"t":21.5}`),
		},
		{DeviceID: "dev1", ConnectionAuthMethod: "sas", Transport: "mqtt", Properties: map[string]string{}, Body: []byte{0xff, 0x00}},
	}
	opts := cmpopts.IgnoreFields(service.TelemetryMessage{}, "SequenceNumber", "EnqueuedTime")
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Fatalf("ReadTelemetry mismatch (-want +got):\n%s", diff)
	}
	if got[0].SequenceNumber == 0 || got[1].SequenceNumber <= got[0].SequenceNumber {
		t.Errorf("sequence numbers %d, %d, want increasing from 1", got[0].SequenceNumber, got[1].SequenceNumber)
	}
	if got[0].EnqueuedTime.IsZero() {
		t.Errorf("EnqueuedTime is zero, want the hub's time")
	}
}

func TestEmulatorReadTelemetryFilters(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	dev1 := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))
	dev2 := connectDevice(t, ctx, srv, createDevice(t, srv, "dev2"))
	modCS, err := srv.CreateModule("dev1", "m1")
	if err != nil {
		t.Fatalf("CreateModule: %v", err)
	}
	mod := connectDevice(t, ctx, srv, modCS)
	send(t, ctx, dev1, &device.Message{MessageID: "a"})
	send(t, ctx, dev2, &device.Message{MessageID: "b"})
	send(t, ctx, mod, &device.Message{MessageID: "c"})
	send(t, ctx, dev1, &device.Message{MessageID: "d"})

	all, err := c.ReadTelemetry(ctx, service.TelemetryFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("ReadTelemetry: %d messages, %v; want 4", len(all), err)
	}
	first := all[0].SequenceNumber
	tests := []struct {
		name string
		f    service.TelemetryFilter
		want []string // message ids
	}{
		{"device includes its modules", service.TelemetryFilter{DeviceID: "dev1"}, []string{"a", "c", "d"}},
		{"other device", service.TelemetryFilter{DeviceID: "dev2"}, []string{"b"}},
		{"module", service.TelemetryFilter{DeviceID: "dev1", ModuleID: "m1"}, []string{"c"}},
		{"since", service.TelemetryFilter{Since: first}, []string{"b", "c", "d"}},
		{"limit", service.TelemetryFilter{Limit: 2}, []string{"a", "b"}},
		{"since and limit", service.TelemetryFilter{Since: first + 1, Limit: 1}, []string{"c"}},
		{"nothing after the last", service.TelemetryFilter{Since: all[3].SequenceNumber}, []string{}},
		{"unknown device", service.TelemetryFilter{DeviceID: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := c.ReadTelemetry(ctx, tt.f)
			if err != nil {
				t.Fatalf("ReadTelemetry(%+v): %v", tt.f, err)
			}
			got := []string{}
			for _, m := range ms {
				got = append(got, m.MessageID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadTelemetry(%+v) message ids (-want +got):\n%s", tt.f, diff)
			}
		})
	}
}

// TestEmulatorReadTelemetryWait checks the long poll: a call that finds
// nothing returns the message the device sends while it waits.
func TestEmulatorReadTelemetryWait(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	d := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))

	t.Run("returns a message sent during the wait", func(t *testing.T) {
		sent := make(chan struct{})
		var once sync.Once
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }}
		type result struct {
			ms  []*service.TelemetryMessage
			err error
		}
		done := make(chan result, 1)
		go func() {
			ms, err := c.ReadTelemetry(httptrace.WithClientTrace(ctx, trace), service.TelemetryFilter{DeviceID: "dev1", Wait: 15 * time.Second})
			done <- result{ms, err}
		}()
		select {
		case <-sent:
		case r := <-done:
			t.Fatalf("ReadTelemetry returned %d messages, %v before the device sent anything", len(r.ms), r.err)
		}
		send(t, ctx, d, &device.Message{MessageID: "late"})
		r := <-done
		if r.err != nil {
			t.Fatalf("ReadTelemetry: %v", r.err)
		}
		if len(r.ms) != 1 || r.ms[0].MessageID != "late" {
			t.Errorf("got %d messages %+v, want the one sent during the wait", len(r.ms), r.ms)
		}
	})

	t.Run("ends empty when nothing arrives", func(t *testing.T) {
		start := time.Now()
		ms, err := c.ReadTelemetry(ctx, service.TelemetryFilter{DeviceID: "dev2", Wait: 300 * time.Millisecond})
		if err != nil {
			t.Fatalf("ReadTelemetry: %v", err)
		}
		if ms == nil || len(ms) != 0 {
			t.Errorf("got %v, want an empty, non-nil slice", ms)
		}
		// A lower bound only: the emulator held the request for the wait.
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("returned after %v, want at least the 300ms wait", el)
		}
	})

	t.Run("cancelled by the context", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.ReadTelemetry(cctx, service.TelemetryFilter{DeviceID: "dev2", Wait: time.Minute})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestEmulatorC2DFeedback settles messages through the device HTTPS API
// and reads the feedback their Ack asked for.
func TestEmulatorC2DFeedback(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	cs := createDevice(t, srv, "dev1")

	fb, err := c.C2DFeedback(ctx)
	if err != nil || fb == nil || len(fb) != 0 {
		t.Fatalf("C2DFeedback before any message = %v, %v; want an empty slice", fb, err)
	}

	for _, m := range []*service.C2DMessage{
		{MessageID: "full-completed", Ack: service.AckFull},
		{MessageID: "negative-rejected", Ack: service.AckNegative},
		{MessageID: "none-completed", Ack: service.AckNone},
		{MessageID: "positive-rejected", Ack: service.AckPositive},
	} {
		if err := c.SendC2D(ctx, "dev1", m); err != nil {
			t.Fatalf("SendC2D(%s): %v", m.MessageID, err)
		}
	}
	dh := newDeviceHTTP(t, srv, cs)
	for _, reject := range []bool{false, true, false, true} {
		dh.receiveAndSettle(ctx, reject)
	}

	fb, err = c.C2DFeedback(ctx)
	if err != nil {
		t.Fatalf("C2DFeedback: %v", err)
	}
	dev, err := srv.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	want := []service.Feedback{
		{OriginalMessageID: "full-completed", DeviceGenerationID: dev.GenerationID, DeviceID: "dev1", StatusCode: service.FeedbackSuccess, Description: "Success"},
		{OriginalMessageID: "negative-rejected", DeviceGenerationID: dev.GenerationID, DeviceID: "dev1", StatusCode: service.FeedbackRejected, Description: "Message rejected"},
	}
	if diff := cmp.Diff(want, fb, cmpopts.IgnoreFields(service.Feedback{}, "EnqueuedTimeUTC")); diff != "" {
		t.Errorf("feedback mismatch (-want +got):\n%s", diff)
	}
	for _, f := range fb {
		if f.EnqueuedTimeUTC.IsZero() {
			t.Errorf("feedback %s has no time", f.OriginalMessageID)
		}
	}
}

// deviceHTTP receives and settles cloud-to-device messages through the
// hub's device HTTPS API, which needs no MQTT session.
type deviceHTTP struct {
	t      *testing.T
	srv    *emulator.Server
	id     string
	token  string
	client *http.Client
}

func newDeviceHTTP(t *testing.T, srv *emulator.Server, cs string) *deviceHTTP {
	t.Helper()
	p, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(sas.ResourceURI(p.HostName, p.DeviceID, ""), "", p.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = srv.TLSConfig()
	t.Cleanup(tr.CloseIdleConnections)
	return &deviceHTTP{t: t, srv: srv, id: p.DeviceID, token: tok, client: &http.Client{Transport: tr}}
}

func (d *deviceHTTP) do(ctx context.Context, method, path string) *http.Response {
	d.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+d.srv.HTTPSAddr()+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp
}

// receiveAndSettle receives the next message and completes or rejects it.
func (d *deviceHTTP) receiveAndSettle(ctx context.Context, reject bool) {
	d.t.Helper()
	base := "/devices/" + d.id + "/messages/deviceBound"
	resp := d.do(ctx, http.MethodGet, base+"?api-version=2021-04-12")
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("receive: status %d, want 200", resp.StatusCode)
	}
	path := base + "/" + strings.Trim(resp.Header.Get("ETag"), `"`) + "?api-version=2021-04-12"
	if reject {
		path += "&reject"
	}
	if resp := d.do(ctx, http.MethodDelete, path); resp.StatusCode != http.StatusNoContent {
		d.t.Fatalf("settle: status %d, want 204", resp.StatusCode)
	}
}

func TestEmulatorTelemetryHead(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	if head, err := c.TelemetryHead(ctx); err != nil || head != 0 {
		t.Fatalf("TelemetryHead of an empty log: %d, %v; want 0", head, err)
	}
	d := connectDevice(t, ctx, srv, createDevice(t, srv, "dev1"))
	send(t, ctx, d, &device.Message{MessageID: "old"})
	head, err := c.TelemetryHead(ctx)
	if err != nil || head == 0 {
		t.Fatalf("TelemetryHead: %d, %v", head, err)
	}
	send(t, ctx, d, &device.Message{MessageID: "new"})
	got, err := c.ReadTelemetry(ctx, service.TelemetryFilter{Since: head})
	if err != nil || len(got) != 1 || got[0].MessageID != "new" {
		t.Fatalf("reading from the head: %v, %v; want only the new message", got, err)
	}
}
