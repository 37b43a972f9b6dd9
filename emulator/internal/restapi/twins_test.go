// SPDX-License-Identifier: MIT

package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// twinFields are the members of a service twin (iothub-protocol.md §5.1).
var twinFields = []string{"deviceId", "etag", "deviceEtag", "status", "statusUpdateTime", "connectionState",
	"lastActivityTime", "cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint", "modelId",
	"version", "tags", "properties", "capabilities"}

func TestGetTwinShape(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("d1")
	r := e.owner("GET", "/twins/d1", nil)
	wantStatus(t, "GET twin", r, http.StatusOK)
	tw := decode[map[string]any](t, r)
	for _, k := range twinFields {
		if _, ok := tw[k]; !ok {
			t.Errorf("twin lacks %q: %s", k, r.body)
		}
	}
	for _, k := range []string{"moduleId", "generationId", "connectionStateUpdatedTime"} {
		if _, ok := tw[k]; ok {
			t.Errorf("device twin has %q, which is not a twin member: %s", k, r.body)
		}
	}
	if tw["deviceId"] != "d1" || tw["deviceEtag"] != d.ETag || tw["status"] != "enabled" ||
		tw["connectionState"] != "Disconnected" || tw["authenticationType"] != "sas" || tw["modelId"] != "" {
		t.Errorf("got twin %s, want d1/%s/enabled/Disconnected/sas and empty modelId", r.body, d.ETag)
	}
	etag, _ := tw["etag"].(string)
	if etag == "" {
		t.Fatalf("twin has no etag: %s", r.body)
	}
	if got, want := r.header.Get("ETag"), strconv.Quote(etag); got != want {
		t.Errorf("got ETag header %s, want %s", got, want)
	}
	props, _ := tw["properties"].(map[string]any)
	for _, section := range []string{"desired", "reported"} {
		s, ok := props[section].(map[string]any)
		if !ok {
			t.Fatalf("twin lacks properties.%s: %s", section, r.body)
		}
		if _, ok := s["$version"]; !ok {
			t.Errorf("properties.%s lacks $version: %s", section, r.body)
		}
		if _, ok := s["$metadata"]; !ok {
			t.Errorf("properties.%s lacks $metadata: %s", section, r.body)
		}
	}
	if diff := cmp.Diff(map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}, tw["x509Thumbprint"]); diff != "" {
		t.Errorf("x509Thumbprint (-want +got):\n%s", diff)
	}
}

func TestModuleTwin(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	m := e.createModule("d1", "m1")
	r := e.owner("GET", "/twins/d1/modules/m1", nil)
	wantStatus(t, "GET module twin", r, http.StatusOK)
	tw := decode[map[string]any](t, r)
	if tw["deviceId"] != "d1" || tw["moduleId"] != "m1" || tw["deviceEtag"] != m.ETag {
		t.Errorf("got module twin %s, want d1/m1 with deviceEtag %s", r.body, m.ETag)
	}

	r = e.ownerIf("PATCH", "/twins/d1/modules/m1", `"*"`, map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 1}}})
	wantStatus(t, "PATCH module twin", r, http.StatusOK)
	got := decode[map[string]any](t, r)["properties"].(map[string]any)["desired"].(map[string]any)
	if got["x"] != 1.0 {
		t.Errorf("got module desired %v, want x 1", got)
	}

	r = e.owner("PUT", "/twins/d1/modules/m1", map[string]any{"tags": map[string]any{"k": "v"}})
	wantStatus(t, "PUT module twin", r, http.StatusOK)

	checkFormA(t, "unknown module", e.owner("GET", "/twins/d1/modules/nope", nil), http.StatusNotFound, "ModuleNotFound")
	checkFormA(t, "module of unknown device", e.owner("GET", "/twins/ghost/modules/m1", nil), http.StatusNotFound, "DeviceNotFound")
	checkFormA(t, "patch unknown module", e.owner("PATCH", "/twins/d1/modules/nope", map[string]any{"tags": map[string]any{}}), http.StatusNotFound, "ModuleNotFound")
}

func TestPatchTwin(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	before := decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))

	r := e.ownerIf("PATCH", "/twins/d1", `"*"`, map[string]any{
		"tags":       map[string]any{"site": map[string]any{"floor": "3", "room": "a"}},
		"properties": map[string]any{"desired": map[string]any{"fanSpeed": 4, "mode": "eco"}},
	})
	wantStatus(t, "PATCH", r, http.StatusOK)
	tw := decode[map[string]any](t, r)
	if tw["etag"] == before["etag"] {
		t.Errorf("twin etag stayed %v after a PATCH", tw["etag"])
	}
	if got, want := r.header.Get("ETag"), strconv.Quote(tw["etag"].(string)); got != want {
		t.Errorf("got ETag header %s, want %s", got, want)
	}
	if diff := cmp.Diff(map[string]any{"site": map[string]any{"floor": "3", "room": "a"}}, tw["tags"]); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}

	// Deep merge; null removes.
	r = e.ownerIf("PATCH", "/twins/d1", `"`+tw["etag"].(string)+`"`, map[string]any{
		"tags":       map[string]any{"site": map[string]any{"room": nil}},
		"properties": map[string]any{"desired": map[string]any{"mode": nil}},
	})
	wantStatus(t, "PATCH with current etag", r, http.StatusOK)
	tw2 := decode[map[string]any](t, r)
	if diff := cmp.Diff(map[string]any{"site": map[string]any{"floor": "3"}}, tw2["tags"]); diff != "" {
		t.Errorf("tags after null (-want +got):\n%s", diff)
	}
	desired := tw2["properties"].(map[string]any)["desired"].(map[string]any)
	if _, ok := desired["mode"]; ok || desired["fanSpeed"] != 4.0 {
		t.Errorf("got desired %v, want fanSpeed 4 and no mode", desired)
	}

	// The first etag is stale now.
	r = e.ownerIf("PATCH", "/twins/d1", `"`+tw["etag"].(string)+`"`, map[string]any{"tags": map[string]any{"x": 1}})
	checkFormA(t, "PATCH with stale etag", r, http.StatusPreconditionFailed, "PreconditionFailed")

	// GET sees what PATCH answered.
	got := decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))
	if diff := cmp.Diff(tw2, got); diff != "" {
		t.Errorf("GET differs from the last PATCH answer (-patch +get):\n%s", diff)
	}
}

func TestReplaceTwin(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	wantStatus(t, "seed", e.owner("PATCH", "/twins/d1", map[string]any{
		"tags":       map[string]any{"old": 1, "keep": 1},
		"properties": map[string]any{"desired": map[string]any{"a": 1}},
	}), http.StatusOK)

	r := e.ownerIf("PUT", "/twins/d1", `"*"`, map[string]any{
		"tags":       map[string]any{"new": 2},
		"properties": map[string]any{"desired": map[string]any{"b": 2}},
	})
	wantStatus(t, "PUT", r, http.StatusOK)
	tw := decode[map[string]any](t, r)
	if diff := cmp.Diff(map[string]any{"new": 2.0}, tw["tags"]); diff != "" {
		t.Errorf("tags after replace (-want +got):\n%s", diff)
	}
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if _, ok := desired["a"]; ok || desired["b"] != 2.0 {
		t.Errorf("got desired %v after replace, want only b", desired)
	}
	r = e.ownerIf("PUT", "/twins/d1", `"AAAAAAAAAAE="`, map[string]any{"tags": map[string]any{}})
	checkFormA(t, "PUT with stale etag", r, http.StatusPreconditionFailed, "PreconditionFailed")
}

func TestTwinErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"get unknown device", "GET", "/twins/ghost", nil, 404, "DeviceNotFound"},
		{"patch unknown device", "PATCH", "/twins/ghost", map[string]any{"tags": map[string]any{}}, 404, "DeviceNotFound"},
		{"put unknown device", "PUT", "/twins/ghost", map[string]any{"tags": map[string]any{}}, 404, "DeviceNotFound"},
		{"bad JSON", "PATCH", "/twins/d1", `{"tags":`, 400, "ArgumentInvalid"},
		{"empty body", "PATCH", "/twins/d1", "", 400, "ArgumentNull"},
		{"tags not an object", "PATCH", "/twins/d1", `{"tags":5}`, 400, "ArgumentInvalid"},
		{"bad JSON on PUT", "PUT", "/twins/d1", `[}`, 400, "ArgumentInvalid"},
		{"desired without properties", "PATCH", "/twins/d1", `{"desired":{"fan":1}}`, 400, "ArgumentInvalid"},
		{"reported without properties", "PUT", "/twins/d1", `{"reported":{"fan":1}}`, 400, "ArgumentInvalid"},
		// Limits the parser enforces as it reads, before anything else.
		{"desired nested 9000 levels", "PATCH", "/twins/d1", `{"properties":{"desired":{"a":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}}}`, 400, "ArgumentInvalid"},
		{"tags nested 9000 levels on PUT", "PUT", "/twins/d1", `{"tags":{"a":` + strings.Repeat("{\"a\":", 9000) + "1" + strings.Repeat("}", 9000) + `}}`, 400, "ArgumentInvalid"},
		{"ignored section nested 9000 levels", "PATCH", "/twins/d1", `{"properties":{"reported":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}}`, 400, "ArgumentInvalid"},
		{"desired of 100,000 values", "PATCH", "/twins/d1", `{"properties":{"desired":{"a":[` + strings.Repeat("1,", 99999) + `1]}}}`, 400, "ArgumentInvalid"},
	}
	before := e.owner("GET", "/twins/d1", nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			checkFormA(t, tc.method+" "+tc.path, e.owner(tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}
	if after := e.owner("GET", "/twins/d1", nil); !bytes.Equal(before.body, after.body) {
		t.Errorf("refused updates changed the twin:\nbefore %s\nafter  %s", before.body, after.body)
	}
}

// desiredSession is a connected device that records desired notifications.
type desiredSession struct {
	fakeSession
	got chan string
}

func (s *desiredSession) SendDesired(v int64, body []byte) error {
	s.got <- strconv.FormatInt(v, 10) + " " + string(body)
	return nil
}

// TestPatchDesiredNullClears: "properties":{"desired":null} removes every
// desired property, bumps the desired $version and tells the connected
// device to delete each one; "tags":null clears the tags. Both with and
// without If-Match: * (the official Node e2e suite tests both).
func TestPatchDesiredNullClears(t *testing.T) {
	for _, ifMatch := range []string{"", `"*"`} {
		t.Run("If-Match="+ifMatch, func(t *testing.T) {
			e := newEnv(t)
			e.createDevice("d1")
			sess := &desiredSession{got: make(chan string, 4)}
			c := e.hub.Connect(hub.Identity{DeviceID: "d1"}, sess, hub.ConnectInfo{AuthMethod: "sas"})
			t.Cleanup(c.Disconnect)
			c.SubscribeDesired()
			wantStatus(t, "set", e.owner("PATCH", "/twins/d1", map[string]any{"tags": map[string]any{"site": "B7"},
				"properties": map[string]any{"desired": map[string]any{"fan": 3, "mode": map[string]any{"eco": true}}}}), http.StatusOK)
			<-sess.got

			r := e.ownerIf("PATCH", "/twins/d1", ifMatch, `{"tags":null,"properties":{"desired":null}}`)
			wantStatus(t, "clear", r, http.StatusOK)
			tw := decode[hub.Twin](t, r)
			var desired map[string]any
			if err := json.Unmarshal(tw.Properties.Desired, &desired); err != nil {
				t.Fatal(err)
			}
			if desired["$version"] != float64(3) || len(desired) != 2 { // $version, $metadata and nothing else
				t.Errorf("desired after clearing: got %s, want only $version 3 and $metadata", tw.Properties.Desired)
			}
			if string(tw.Tags) != `{}` {
				t.Errorf("tags after clearing: got %s, want {}", tw.Tags)
			}
			select {
			case got := <-sess.got:
				if want := `3 {"fan":null,"mode":null,"$version":3}`; got != want {
					t.Errorf("device notification: got %s, want %s", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the device was not notified")
			}
		})
	}
}

// TestTwinGetEqualsQueryRow: GET /twins/{id} and a SELECT * row of the same
// twin are the same bytes, for twins whose every optional field is set
// (status reason, status update time, queued C2D messages, model id, edge
// scopes, a connected module), so no field can appear in one and not the
// other.
func TestTwinGetEqualsQueryRow(t *testing.T) {
	e := newEnv(t)
	edge := e.owner("PUT", "/devices/gw", map[string]any{"deviceId": "gw", "capabilities": map[string]any{"iotEdge": true}})
	wantStatus(t, "create edge", edge, http.StatusOK)
	scope := decode[hub.Device](t, edge).DeviceScope
	leaf := e.owner("PUT", "/devices/leaf", map[string]any{"deviceId": "leaf", "deviceScope": scope})
	wantStatus(t, "create leaf", leaf, http.StatusOK)
	leaf = e.ownerIf("PUT", "/devices/leaf", "*", map[string]any{"deviceId": "leaf", "deviceScope": scope, "status": "disabled", "statusReason": "maintenance"})
	wantStatus(t, "disable leaf", leaf, http.StatusOK)
	wantStatus(t, "desired", e.owner("PATCH", "/twins/leaf", map[string]any{"tags": map[string]any{"site": "B7"}, "properties": map[string]any{"desired": map[string]any{"fan": 3}}}), http.StatusOK)
	if _, err := e.hub.SendC2D(context.Background(), "leaf", &hub.C2DMessage{Body: []byte("hi")}, 0); err != nil {
		t.Fatal(err)
	}
	e.createModule("gw", "m1")
	mod := e.hub.Connect(hub.Identity{DeviceID: "gw", ModuleID: "m1"}, &fakeSession{}, hub.ConnectInfo{AuthMethod: "sas", ModelID: "dtmi:com:example:Thermostat;1"})
	t.Cleanup(mod.Disconnect)

	for _, tt := range []struct{ path, query string }{
		{"/twins/gw", "SELECT * FROM devices WHERE deviceId = 'gw'"},
		{"/twins/leaf", "SELECT * FROM devices WHERE deviceId = 'leaf'"},
		{"/twins/gw/modules/m1", "SELECT * FROM devices.modules WHERE moduleId = 'm1'"},
	} {
		get := e.owner("GET", tt.path, nil)
		wantStatus(t, "GET "+tt.path, get, http.StatusOK)
		q := e.query(tt.query, 0, "")
		wantStatus(t, tt.query, q, http.StatusOK)
		rows := decode[[]json.RawMessage](t, q)
		if len(rows) != 1 {
			t.Fatalf("%s: got %d rows, want 1: %s", tt.query, len(rows), q.body)
		}
		if !bytes.Equal(get.body, rows[0]) {
			t.Errorf("GET %s and its query row differ:\nGET   %s\nquery %s", tt.path, get.body, rows[0])
		}
	}
	// The fields that set this test apart actually appear.
	leafTwin := decode[map[string]any](t, e.owner("GET", "/twins/leaf", nil))
	if leafTwin["statusReason"] != "maintenance" || leafTwin["cloudToDeviceMessageCount"] != float64(1) ||
		leafTwin["deviceScope"] != scope || leafTwin["statusUpdateTime"] == "0001-01-01T00:00:00Z" {
		t.Errorf("leaf twin lacks a field this test relies on: %v", leafTwin)
	}
	modTwin := decode[map[string]any](t, e.owner("GET", "/twins/gw/modules/m1", nil))
	if modTwin["modelId"] != "dtmi:com:example:Thermostat;1" || modTwin["connectionState"] != "Connected" {
		t.Errorf("module twin lacks a field this test relies on: %v", modTwin)
	}
}

// TestReplaceTwinEchoingLargeIgnoredSections: what the back end cannot
// write (reported properties, metadata, identity fields) is skipped as it
// is read, so a fetched twin sent back whole is accepted however many
// values those parts hold.
func TestReplaceTwinEchoingLargeIgnoredSections(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	big := "[" + strings.Repeat("1,", 99999) + "1]"
	body := `{"deviceId":"d1","etag":"*","properties":{"desired":{"fan":3,"$metadata":{"x":` + big + `},"$version":1},"reported":{"r":` + big + `}},"tags":{"site":"B7"}}`
	r := e.owner("PUT", "/twins/d1", body)
	wantStatus(t, "PUT", r, http.StatusOK)
	var tw struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.body, &tw); err != nil {
		t.Fatal(err)
	}
	if tw.Tags["site"] != "B7" || tw.Properties.Desired["fan"] != float64(3) {
		t.Errorf("got tags %v, desired %v; want site B7 and fan 3", tw.Tags, tw.Properties.Desired)
	}
}
