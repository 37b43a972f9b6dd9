// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// twinClient is a device's twin pair with request/answer helpers.
type twinClient struct {
	snd *goamqp.Sender
	rcv *goamqp.Receiver
	seq int
}

// twinAnswer is an answer as the SDKs read it.
type twinAnswer struct {
	status  int32
	version any
	body    []byte
}

// do sends a twin request and returns the answer to it, checking that it
// echoes the correlation-id.
func (c *twinClient) do(tb testing.TB, op, resource string, annotations goamqp.Annotations, body []byte) twinAnswer {
	tb.Helper()
	a, err := c.request(ctxT(tb), op, resource, annotations, body)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// request is do without a testing.TB, for benchmark goroutines.
func (c *twinClient) request(ctx context.Context, op, resource string, annotations goamqp.Annotations, body []byte) (twinAnswer, error) {
	c.seq++
	cid := fmt.Sprintf("req-%d", c.seq)
	ann := goamqp.Annotations{"operation": op}
	if resource != "" {
		ann["resource"] = resource
	}
	for k, v := range annotations {
		ann[k] = v
	}
	m := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: cid}, Annotations: ann}
	if body != nil {
		m.Data = [][]byte{body}
	}
	if err := c.snd.Send(ctx, m, nil); err != nil {
		return twinAnswer{}, fmt.Errorf("%s request: %w", op, err)
	}
	r, err := c.rcv.Receive(ctx, nil)
	if err != nil {
		return twinAnswer{}, fmt.Errorf("%s answer: %w", op, err)
	}
	_ = c.rcv.AcceptMessage(ctx, r)
	if r.Properties == nil || r.Properties.CorrelationID != cid {
		return twinAnswer{}, fmt.Errorf("%s answer: correlation-id %#v, want %q", op, r.Properties, cid)
	}
	st, ok := r.Annotations["status"].(int32)
	if !ok {
		return twinAnswer{}, fmt.Errorf("%s answer: status %#v is not an AMQP int", op, r.Annotations["status"])
	}
	return twinAnswer{status: st, version: r.Annotations["version"], body: r.GetData()}, nil
}

func (e *env) twinClient(tb testing.TB, dev *devClient) *twinClient {
	tb.Helper()
	snd, rcv := dev.twinLinks(tb)
	return &twinClient{snd: snd, rcv: rcv}
}

// TestDeviceTwin: GET, PATCH with and without a base version, the
// desired-property subscription (PUT, DELETE) and the pushes, as the
// Node and C# SDKs use them, for a device and a module.
func TestDeviceTwin(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "edge")
	for _, id := range []hub.Identity{{DeviceID: "t1"}, {DeviceID: "edge", ModuleID: "mod"}} {
		t.Run(id.String(), func(t *testing.T) {
			key := e.addIdentity(t, id)
			ctx := context.Background()
			if _, err := e.hub.UpdateTwin(ctx, id, []byte(`{"properties":{"desired":{"mode":"eco"}}}`), "*", false); err != nil {
				t.Fatal(err)
			}
			tc := e.twinClient(t, e.connectDevice(t, viaTLS, id, key))

			get := tc.do(t, "GET", "", nil, []byte(" "))
			var doc struct {
				Desired  map[string]any `json:"desired"`
				Reported map[string]any `json:"reported"`
			}
			if get.status != 200 || json.Unmarshal(get.body, &doc) != nil || doc.Desired["mode"] != "eco" || doc.Reported["$version"] != float64(1) {
				t.Fatalf("GET: %d %s", get.status, get.body)
			}

			patch := tc.do(t, "PATCH", "/properties/reported", nil, []byte(`{"rebootTime":"now"}`))
			if patch.status != 204 || patch.version != int64(2) || len(patch.body) != 0 {
				t.Fatalf("PATCH: %d version %#v body %q; want 204 with the new version as an AMQP long", patch.status, patch.version, patch.body)
			}
			// C# v2 sends a null version; a number is the base $version.
			if a := tc.do(t, "PATCH", "/properties/reported", goamqp.Annotations{"version": nil}, []byte(`{"a":1}`)); a.status != 204 || a.version != int64(3) {
				t.Fatalf("PATCH with a null version: %d %#v", a.status, a.version)
			}
			if a := tc.do(t, "PATCH", "/properties/reported", goamqp.Annotations{"version": int64(3)}, []byte(`{"b":1}`)); a.status != 204 || a.version != int64(4) {
				t.Fatalf("PATCH at the current version: %d %#v", a.status, a.version)
			}
			stale := tc.do(t, "PATCH", "/properties/reported", goamqp.Annotations{"version": int64(2)}, []byte(`{"c":1}`))
			var detail struct {
				ErrorCode int `json:"errorCode"`
			}
			if stale.status != 412 || json.Unmarshal(stale.body, &detail) != nil || detail.ErrorCode != 412001 {
				t.Fatalf("PATCH at a stale version: %d %s; want 412 with the hub's error object", stale.status, stale.body)
			}
			if reported(t, e, id)["c"] != nil {
				t.Error("a refused patch was applied")
			}

			// No pushes before PUT.
			if _, err := e.hub.UpdateTwin(ctx, id, []byte(`{"properties":{"desired":{"mode":"sport"}}}`), "*", false); err != nil {
				t.Fatal(err)
			}
			nothingOn(t, tc.rcv, "a desired change before PUT")
			if a := tc.do(t, "PUT", "/notifications/twin/properties/desired", nil, nil); a.status != 200 {
				t.Fatalf("PUT: %d %s", a.status, a.body)
			}
			if _, err := e.hub.UpdateTwin(ctx, id, []byte(`{"properties":{"desired":{"mode":"eco"}}}`), "*", false); err != nil {
				t.Fatal(err)
			}
			push := receive(t, tc.rcv)
			_ = tc.rcv.AcceptMessage(ctxT(t), push)
			var body map[string]any
			if push.Properties != nil && push.Properties.CorrelationID != nil {
				t.Errorf("push has correlation-id %#v; the SDKs tell pushes by its absence", push.Properties.CorrelationID)
			}
			if json.Unmarshal(push.GetData(), &body) != nil || body["mode"] != "eco" || body["$version"] != float64(4) || push.Annotations["version"] != int64(4) {
				t.Fatalf("push: %s annotations %v", push.GetData(), push.Annotations)
			}
			if a := tc.do(t, "DELETE", "/notifications/twin/properties/desired", nil, []byte(" ")); a.status != 200 {
				t.Fatalf("DELETE: %d", a.status)
			}
			if _, err := e.hub.UpdateTwin(ctx, id, []byte(`{"properties":{"desired":{"mode":"off"}}}`), "*", false); err != nil {
				t.Fatal(err)
			}
			nothingOn(t, tc.rcv, "a desired change after DELETE")
		})
	}
}

// TestDeviceTwinMalformed: operations the hub does not know, resources
// that do not match the operation and invalid patches are answered with
// 400 and the hub's error object; a request without a correlation-id,
// which cannot be answered, is rejected. Nothing is applied.
func TestDeviceTwinMalformed(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "messy"}
	dev := e.connectDevice(t, viaPlain, id, e.addDevice(t, id.DeviceID))
	tc := e.twinClient(t, dev)
	for _, r := range []struct {
		name, op, resource string
		ann                goamqp.Annotations
		body               string
		status             int32
	}{
		{"unknown operation", "POST", "", nil, "{}", 400},
		{"PATCH of desired", "PATCH", "/properties/desired", nil, `{"a":1}`, 400},
		{"PATCH without resource", "PATCH", "", nil, `{"a":1}`, 400},
		{"PUT of another resource", "PUT", "/properties/reported", nil, "", 400},
		{"a patch that is not JSON", "PATCH", "/properties/reported", nil, `{"a":`, 400},
		{"a patch with a $-key", "PATCH", "/properties/reported", nil, `{"$bad":1}`, 400},
		{"a negative version", "PATCH", "/properties/reported", goamqp.Annotations{"version": int64(-1)}, `{"a":1}`, 400},
		{"a version that is no number", "PATCH", "/properties/reported", goamqp.Annotations{"version": "two"}, `{"a":1}`, 400},
	} {
		a := tc.do(t, r.op, r.resource, r.ann, []byte(r.body))
		var detail struct {
			ErrorCode int    `json:"errorCode"`
			Message   string `json:"message"`
		}
		if a.status != r.status || json.Unmarshal(a.body, &detail) != nil || detail.ErrorCode/1000 != int(r.status) || detail.Message == "" {
			t.Errorf("%s: %d %s; want %d with the hub's error object", r.name, a.status, a.body, r.status)
		}
	}
	noCID := &goamqp.Message{Annotations: goamqp.Annotations{"operation": "GET"}}
	wantCondition(t, "no correlation-id", linkError(t, tc.snd.Send(ctxT(t), noCID, nil)), "com.microsoft:argument-error", "correlation-id")
	if reported(t, e, id)["a"] != nil {
		t.Error("a refused patch was applied")
	}
	if a := tc.do(t, "GET", "", nil, nil); a.status != 200 {
		t.Errorf("GET after the refusals: %d", a.status)
	}
}

// reported returns the twin's reported properties.
func reported(tb testing.TB, e *env, id hub.Identity) map[string]any {
	tb.Helper()
	tw, err := e.hub.GetTwin(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(tw.Properties.Reported, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}
