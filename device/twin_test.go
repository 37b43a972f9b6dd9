// SPDX-License-Identifier: MIT

package device_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/device/internal/fakehub"
)

func TestGetTwin(t *testing.T) {
	h := fakehub.Start(t)
	h.SetTwin(map[string]any{"fanSpeed": 3.0}, map[string]any{"firmware": "1.4.0"}, 7, 12)
	c := connected(t, h)
	twin, err := c.GetTwin(testContext(t))
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	want := &device.Twin{
		Desired:  device.Properties{"fanSpeed": 3.0, "$version": 7.0},
		Reported: device.Properties{"firmware": "1.4.0", "$version": 12.0},
	}
	if diff := cmp.Diff(want, twin, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Raw" }, cmp.Ignore())); diff != "" {
		t.Errorf("twin mismatch (-want +got):\n%s", diff)
	}
	if twin.Desired.Version() != 7 || twin.Reported.Version() != 12 {
		t.Errorf("versions = %d, %d, want 7, 12", twin.Desired.Version(), twin.Reported.Version())
	}
	if !json.Valid(twin.Raw) {
		t.Errorf("Raw = %q, want the JSON document", twin.Raw)
	}
	// Wire: SUBACK for $iothub/twin/res/# before the request (Node
	// mqtt_twin_client.ts), request at QoS 0 with body " ", $rid a UUID.
	if _, ok := h.Subscriptions("dev1")["$iothub/twin/res/#"]; !ok {
		t.Errorf("subscriptions = %v, want $iothub/twin/res/#", h.Subscriptions("dev1"))
	}
	reqs := h.Publishes("$iothub/twin/")
	if len(reqs) != 1 {
		t.Fatalf("twin requests = %+v, want 1", reqs)
	}
	rid, ok := strings.CutPrefix(reqs[0].Topic, "$iothub/twin/GET/?$rid=")
	if !ok || len(rid) != 36 || reqs[0].QoS != 0 || string(reqs[0].Payload) != " " {
		t.Errorf("request = %+v, want $iothub/twin/GET/?$rid=<uuid> at QoS 0 with body \" \"", reqs[0])
	}
}

func TestUpdateReportedProperties(t *testing.T) {
	h := fakehub.Start(t)
	h.SetTwin(map[string]any{}, map[string]any{"old": 1.0, "keep": "k"}, 1, 4)
	c := connected(t, h)
	ctx := testContext(t)
	v, err := c.UpdateReportedProperties(ctx, map[string]any{"old": nil, "firmware": "2.0", "nested": map[string]any{"a": 1}})
	if err != nil {
		t.Fatalf("UpdateReportedProperties: %v", err)
	}
	if v != 5 {
		t.Errorf("version = %d, want 5", v)
	}
	v, err = c.UpdateReportedProperties(ctx, json.RawMessage(`{"nested":{"b":2}}`))
	if err != nil || v != 6 {
		t.Fatalf("UpdateReportedProperties(raw) = %d, %v, want 6, nil", v, err)
	}
	got, _ := h.Reported()
	want := map[string]any{"keep": "k", "firmware": "2.0", "nested": map[string]any{"a": 1.0, "b": 2.0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported mismatch (-want +got):\n%s", diff)
	}
	pubs := h.Publishes("$iothub/twin/PATCH/")
	if len(pubs) != 2 || !strings.HasPrefix(pubs[0].Topic, "$iothub/twin/PATCH/properties/reported/?$rid=") || pubs[0].QoS != 0 {
		t.Errorf("patch publishes = %+v, want two on $iothub/twin/PATCH/properties/reported/?$rid= at QoS 0", pubs)
	}
	if _, err := c.UpdateReportedProperties(ctx, []int{1}); err == nil {
		t.Error("UpdateReportedProperties(array) = nil error, want one")
	}
}

// TestTwinErrors checks the mapping of non-2xx twin responses to *Error,
// with and without the hub's error body (protocol reference §3.8).
func TestTwinErrors(t *testing.T) {
	h := fakehub.Start(t)
	var reply atomic.Pointer[fakehub.TwinReply]
	h.SetTwinHook(func(fakehub.TwinRequest) (fakehub.TwinReply, bool) {
		return *reply.Load(), true
	})
	c := connected(t, h)
	tests := []struct {
		name     string
		reply    fakehub.TwinReply
		want     *device.Error
		sentinel error
	}{
		{
			name:     "throttled with body",
			reply:    fakehub.TwinReply{Status: 429, Body: []byte(`{"errorCode":429001,"trackingId":"t","message":"Throttled","timestampUtc":"x"}`)},
			want:     &device.Error{Op: "UpdateReportedProperties", StatusCode: 429, Code: 429001, CodeName: "ThrottlingException", Message: "Throttled", TrackingID: "t"},
			sentinel: device.ErrThrottled,
		},
		{
			name:     "precondition failed without body",
			reply:    fakehub.TwinReply{Status: 412},
			want:     &device.Error{Op: "UpdateReportedProperties", StatusCode: 412, Message: "Precondition Failed"},
			sentinel: device.ErrPreconditionFailed,
		},
		{
			name:     "section too large",
			reply:    fakehub.TwinReply{Status: 403, Body: []byte(`{"message":"'Properties.Reported' size should be less than 32768 bytes.","errorCode":403100}`)},
			want:     &device.Error{Op: "UpdateReportedProperties", StatusCode: 403, Code: 403100, Message: "'Properties.Reported' size should be less than 32768 bytes."},
			sentinel: device.ErrForbidden,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply.Store(&tt.reply)
			_, err := c.UpdateReportedProperties(testContext(t), map[string]int{"x": 1})
			var got *device.Error
			if !errors.As(err, &got) {
				t.Fatalf("error = %v, want *device.Error", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(device.Error{}, "RequestID", "Body")); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if got.RequestID == "" || string(got.Body) != string(tt.reply.Body) {
				t.Errorf("RequestID %q, Body %q; want the request's $rid and the reply's payload %q", got.RequestID, got.Body, tt.reply.Body)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.sentinel)
			}
		})
	}
}

// TestTwinTimeout checks that an unanswered request fails with ErrTimeout
// after the operation timeout.
func TestTwinTimeout(t *testing.T) {
	h := fakehub.Start(t)
	h.SetTwinHook(func(fakehub.TwinRequest) (fakehub.TwinReply, bool) { return fakehub.TwinReply{Silent: true}, true })
	c := connected(t, h, device.WithOperationTimeout(100*time.Millisecond))
	if _, err := c.GetTwin(testContext(t)); !errors.Is(err, device.ErrTimeout) {
		t.Errorf("GetTwin() = %v, want ErrTimeout", err)
	}
}

// TestTwinRequestResentAfterDrop checks that a request whose connection
// drops before the response is sent again, with a new $rid, once
// reconnected.
func TestTwinRequestResentAfterDrop(t *testing.T) {
	h := fakehub.Start(t)
	var calls atomic.Int32
	h.SetTwinHook(func(req fakehub.TwinRequest) (fakehub.TwinReply, bool) {
		if calls.Add(1) == 1 {
			_ = h.Drop(req.ClientID)
			return fakehub.TwinReply{Silent: true}, true
		}
		return fakehub.TwinReply{}, false
	})
	c := connected(t, h)
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	reqs := h.Publishes("$iothub/twin/GET/")
	if len(reqs) != 2 || reqs[0].Topic == reqs[1].Topic {
		t.Errorf("GET requests = %+v, want two with different $rid", reqs)
	}
	if n := len(h.Connects()); n != 2 {
		t.Errorf("CONNECTs = %d, want 2", n)
	}
}

func TestDesiredProperties(t *testing.T) {
	h := fakehub.Start(t)
	c := newClient(t, h, deviceString(h.TLSAddr))
	type update struct {
		Patch   device.Properties
		Version int64
	}
	updates := make(chan update, 4)
	c.OnDesiredPropertiesUpdate(func(p device.Properties, v int64) { updates <- update{p, v} })
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	h.WaitSubscribed(t, "dev1", "$iothub/twin/PATCH/properties/desired/#")
	if err := h.SendDesired(map[string]any{"fanSpeed": 4, "schedule": nil}, 8); err != nil {
		t.Fatal(err)
	}
	if err := h.SendDesired(map[string]any{"fanSpeed": 5}, 9); err != nil {
		t.Fatal(err)
	}
	var got []update
	for range 2 {
		select {
		case u := <-updates:
			got = append(got, u)
		case <-time.After(fakehub.WaitTimeout):
			t.Fatal("no desired update")
		}
	}
	want := []update{
		{device.Properties{"fanSpeed": 4.0, "schedule": nil, "$version": 8.0}, 8},
		{device.Properties{"fanSpeed": 5.0, "$version": 9.0}, 9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("updates mismatch (-want +got):\n%s", diff)
	}

	// Without a handler, patches queue for ReceiveDesiredPatch.
	c.OnDesiredPropertiesUpdate(nil)
	if err := h.SendDesired(map[string]any{"led": true}, 10); err != nil {
		t.Fatal(err)
	}
	p, err := c.ReceiveDesiredPatch(testContext(t))
	if err != nil {
		t.Fatalf("ReceiveDesiredPatch: %v", err)
	}
	if p.Version() != 10 || p["led"] != true {
		t.Errorf("patch = %v, want led=true at version 10", p)
	}
}
