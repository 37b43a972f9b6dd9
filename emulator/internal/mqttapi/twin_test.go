// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// twinReply is a parsed $iothub/twin/res/{status}/?$rid=...[&$version=...].
type twinReply struct {
	Status  string
	RID     string
	Version string
	Body    string
}

func (d *device) twinReply(t *testing.T) twinReply {
	t.Helper()
	m := d.next(t)
	rest, ok := strings.CutPrefix(m.Topic(), prefixTwinResponse)
	if !ok {
		t.Fatalf("got a publish on %q, want a twin response", m.Topic())
	}
	status, query, _ := strings.Cut(rest, "/?")
	r := twinReply{Status: status, Body: string(m.Payload())}
	for item := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(item, "=")
		switch k {
		case "$rid":
			r.RID = v
		case "$version":
			r.Version = v
		default:
			t.Errorf("twin response %q has an unexpected key %q", m.Topic(), k)
		}
	}
	return r
}

func TestTwinGetAndPatch(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		c.subscribe(t, filterTwinResponses)

		c.publish(t, "$iothub/twin/GET/?$rid=1", 0, " ")
		got := c.twinReply(t)
		if got.Status != "200" || got.RID != "1" || got.Version != "" {
			t.Fatalf("GET reply: got %+v, want status 200, rid 1, no version", got)
		}
		var doc struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		}
		if err := json.Unmarshal([]byte(got.Body), &doc); err != nil || doc.Desired == nil || doc.Reported == nil {
			t.Fatalf("GET body %s: want desired and reported (%v)", got.Body, err)
		}
		base := doc.Reported["$version"].(float64)

		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=abc-2", 1, `{"fan":{"speed":3},"fw":"1.0"}`)
		got = c.twinReply(t)
		want := twinReply{Status: "204", RID: "abc-2", Version: jsonNumber(base + 1)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("PATCH reply (-want +got):\n%s", diff)
		}

		// Conditional patch on the current version succeeds, on a stale one fails.
		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=3&$version="+jsonNumber(base+1), 0, `{"fw":"1.1"}`)
		if got := c.twinReply(t); got.Status != "204" || got.Version != jsonNumber(base+2) {
			t.Fatalf("conditional PATCH: got %+v, want 204 with version %s", got, jsonNumber(base+2))
		}
		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=4&$version="+jsonNumber(base), 0, `{"fw":"9"}`)
		assertTwinError(t, c.twinReply(t), "412", "4", 412)

		c.publish(t, "$iothub/twin/GET/?$rid=5", 0, "")
		got = c.twinReply(t)
		if err := json.Unmarshal([]byte(got.Body), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Reported["fw"] != "1.1" || doc.Reported["fan"].(map[string]any)["speed"] != 3.0 {
			t.Errorf("reported after patches: got %v, want fw 1.1 and fan.speed 3", doc.Reported)
		}
	})
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// assertTwinError checks an error reply: its status and a body with the
// hub's errorCode (Node and C# v2 read the body, §3.8).
func assertTwinError(t *testing.T, got twinReply, status, rid string, codePrefix int) {
	t.Helper()
	if got.Status != status || got.RID != rid || got.Version != "" {
		t.Errorf("error reply: got status %s rid %s version %q, want status %s rid %s and no version", got.Status, got.RID, got.Version, status, rid)
	}
	var body struct {
		ErrorCode    int    `json:"errorCode"`
		TrackingID   string `json:"trackingId"`
		Message      string `json:"message"`
		TimestampUTC string `json:"timestampUtc"`
	}
	if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
		t.Fatalf("error body %q: %v", got.Body, err)
	}
	if body.ErrorCode/1000 != codePrefix || body.TrackingID == "" || body.Message == "" || body.TimestampUTC == "" {
		t.Errorf("error body: got %+v, want errorCode %dxxx with trackingId, message and timestampUtc", body, codePrefix)
	}
}

func TestTwinPatchErrors(t *testing.T) {
	e := newEnv(t)
	c := e.connectDevice(t, "dev1", false)
	c.subscribe(t, filterTwinResponses)
	tests := []struct {
		name   string
		body   string
		status string
		code   int
	}{
		{"not json", `{"a":`, "400", 400},
		{"not an object", `[1,2]`, "400", 400},
		{"dollar key", `{"$bad":1}`, "400", 400},
		{"reported section over 32 KB", bigPatch(), "403", 403},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := "r" + jsonNumber(float64(i))
			c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, tt.body)
			assertTwinError(t, c.twinReply(t), tt.status, rid, tt.code)
		})
	}
	if !c.IsConnectionOpen() {
		t.Error("twin errors closed the connection, want it open")
	}
}

// bigPatch is a reported patch over the 32 KB section limit whose values
// are each within the 4 KB value limit.
func bigPatch() string {
	var b strings.Builder
	b.WriteString("{")
	for i := range 12 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + jsonNumber(float64(i)) + `":"` + strings.Repeat("x", 3000) + `"`)
	}
	b.WriteString("}")
	return b.String()
}

func TestTwinResponseNeedsSubscription(t *testing.T) {
	e := newEnv(t)
	c := e.connectDevice(t, "dev1", false)
	c.publish(t, "$iothub/twin/GET/?$rid=early", 1, "")
	c.subscribe(t, filterTwinResponses)
	c.publish(t, "$iothub/twin/GET/?$rid=late", 1, "")
	if got := c.twinReply(t); got.RID != "late" {
		t.Errorf("first twin response: got rid %q, want %q (the reply before subscribing is dropped)", got.RID, "late")
	}
}

func TestModuleTwin(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "dev1")
	key := e.addModule(t, "dev1", "mod1")
	id := hub.Identity{DeviceID: "dev1", ModuleID: "mod1"}
	c := e.mustConnect(t, dialer{clientID: "dev1/mod1", password: token(t, id, "", key, farFuture())})
	c.subscribe(t, filterTwinResponses)
	c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=1", 1, `{"m":true}`)
	if got := c.twinReply(t); got.Status != "204" {
		t.Fatalf("module PATCH: got %+v, want 204", got)
	}
	b, err := e.hub.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b.Properties.Reported), `"m":true`) {
		t.Errorf("module twin reported %s: want m=true", b.Properties.Reported)
	}
	dev, err := e.hub.GetTwin(context.Background(), hub.Identity{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dev.Properties.Reported), `"m":true`) {
		t.Errorf("device twin reported %s carries the module's property", dev.Properties.Reported)
	}
}

func TestDesiredPush(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		c.subscribe(t, filterDesired)
		if _, err := e.hub.UpdateTwin(context.Background(), hub.Identity{DeviceID: "dev1"}, []byte(`{"properties":{"desired":{"fan":4}}}`), "*", false); err != nil {
			t.Fatal(err)
		}
		m := c.next(t)
		v, ok := strings.CutPrefix(m.Topic(), prefixDesiredPush+"?$version=")
		if !ok {
			t.Fatalf("desired push on %q, want %s?$version=N", m.Topic(), prefixDesiredPush)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Payload(), &body); err != nil {
			t.Fatal(err)
		}
		if body["fan"] != 4.0 || jsonNumber(body["$version"].(float64)) != v {
			t.Errorf("desired push body %s on version %s: want fan 4 and the same $version", m.Payload(), v)
		}
	})
}

// totalAlloc is the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// TestDeepReportedPatchCostsLittle sends a reported patch nested 320,000
// levels deep, as large as a PUBLISH may be. It is refused with 400 as
// before, but now the parser stops at its depth limit: handling it
// allocates a few times the packet, where the old recursive parse
// allocated about 200 MB on the store's commit goroutine.
func TestDeepReportedPatchCostsLittle(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, ws bool) {
		c := e.connectDevice(t, "dev1", ws)
		c.subscribe(t, filterTwinResponses)
		patch := `{"a":` + strings.Repeat("[", 320000)
		before := totalAlloc()
		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=1", 0, patch)
		got := c.twinReply(t)
		allocated := totalAlloc() - before
		if got.Status != "400" || got.RID != "1" || !strings.Contains(got.Body, "400004") {
			t.Fatalf("got %+v, want 400 with 400004", got)
		}
		t.Logf("allocated %d bytes for a %d-byte patch", allocated, len(patch))
		// Client and server both run here; the packet is copied a few times
		// on each side. 40 times the packet (13 MB) is far from 200 MB.
		if allocated > 40*uint64(len(patch)) {
			t.Errorf("handling the patch allocated %d bytes; want a small multiple of its %d bytes", allocated, len(patch))
		}
		// The twin still takes writes.
		c.publish(t, "$iothub/twin/PATCH/properties/reported/?$rid=2", 0, `{"ok":true}`)
		if got := c.twinReply(t); got.Status != "204" || got.RID != "2" {
			t.Fatalf("next patch: got %+v, want 204", got)
		}
	})
}
