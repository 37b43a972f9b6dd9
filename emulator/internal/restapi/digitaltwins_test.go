// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestDigitalTwinRoutes(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	r := e.owner("GET", "/digitaltwins/d1", nil)
	wantStatus(t, "get", r, 200)
	if got, want := string(r.body), `{"$dtId":"d1","$metadata":{}}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if got := r.header.Get("ETag"); got != `"AAAAAAAAAAE="` {
		t.Errorf("ETag %s", got)
	}
	checkFormA(t, "unknown", e.owner("GET", "/digitaltwins/ghost", nil), http.StatusNotFound, "DeviceNotFound")

	patch := []any{
		map[string]any{"op": "add", "path": "/thermostat1", "value": map[string]any{"targetTemperature": 21, "$metadata": map[string]any{}}},
		map[string]any{"op": "replace", "path": "/fanSpeed", "value": 2},
	}
	r = e.ownerIf("PATCH", "/digitaltwins/d1", `"AAAAAAAAAAE="`, patch)
	wantStatus(t, "patch", r, http.StatusAccepted)
	if r.header.Get("ETag") != `"AAAAAAAAAAI="` || r.header.Get("Location") != "https://localhost/digitaltwins/d1" || len(r.body) != 0 {
		t.Errorf("patch answer: ETag %q Location %q body %q", r.header.Get("ETag"), r.header.Get("Location"), r.body)
	}
	tw := decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))
	d := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if d["fanSpeed"] != 2.0 || d["thermostat1"].(map[string]any)["__t"] != "c" {
		t.Errorf("desired after patch: %v", d)
	}
	dt := decode[map[string]any](t, e.owner("GET", "/digitaltwins/d1", nil))
	if m := dt["thermostat1"].(map[string]any)["$metadata"].(map[string]any)["targetTemperature"].(map[string]any); m["desiredValue"] != 21.0 || m["desiredVersion"] != 2.0 {
		t.Errorf("component metadata: %v", m)
	}

	before := string(e.owner("GET", "/twins/d1", nil).body)
	checkFormA(t, "stale etag", e.ownerIf("PATCH", "/digitaltwins/d1", `"AAAAAAAAAAE="`, patch), http.StatusPreconditionFailed, "PreconditionFailed")
	checkFormA(t, "copy op", e.owner("PATCH", "/digitaltwins/d1", `[{"op":"copy","from":"/fanSpeed","path":"/x"}]`), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "array value", e.owner("PATCH", "/digitaltwins/d1", `[{"op":"add","path":"/x","value":[1]}]`), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "not a patch", e.owner("PATCH", "/digitaltwins/d1", `{"fanSpeed":1}`), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "malformed", e.owner("PATCH", "/digitaltwins/d1", `[{`), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "empty", e.owner("PATCH", "/digitaltwins/d1", ``), http.StatusBadRequest, "ArgumentNull")
	checkFormA(t, "unknown device", e.owner("PATCH", "/digitaltwins/ghost", `[]`), http.StatusNotFound, "DeviceNotFound")
	if after := string(e.owner("GET", "/twins/d1", nil).body); after != before {
		t.Errorf("a refused update changed the twin:\nbefore %s\nafter  %s", before, after)
	}
}

func TestDigitalTwinCommands(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createDevice("offline")
	var mu sync.Mutex
	var seen []string
	e.connect(hub.Identity{DeviceID: "d1"}, func(c *hub.Conn, rid, name string, payload []byte) {
		mu.Lock()
		seen = append(seen, name+" "+string(payload))
		mu.Unlock()
		status := 200
		if name == "fail" {
			status = 500
		}
		c.ResolveMethod(rid, status, []byte(`{"echo":`+strconv.Quote(name)+`}`))
	})

	r := e.owner("POST", "/digitaltwins/d1/components/thermostat1/commands/getMaxMinReport?connectTimeoutInSeconds=5&responseTimeoutInSeconds=10", `"2024-05-02T00:00:00Z"`)
	wantStatus(t, "component command", r, 200)
	if string(r.body) != `{"echo":"thermostat1*getMaxMinReport"}` || r.header.Get("x-ms-command-statuscode") != "200" || r.header.Get("x-ms-request-id") == "" {
		t.Errorf("answer: %s, headers %v", r.body, r.header)
	}
	r = e.owner("POST", "/digitaltwins/d1/commands/fail", nil)
	wantStatus(t, "failing command", r, 200)
	if r.header.Get("x-ms-command-statuscode") != "500" {
		t.Errorf("x-ms-command-statuscode %q, want 500", r.header.Get("x-ms-command-statuscode"))
	}
	mu.Lock()
	if want := []string{`thermostat1*getMaxMinReport "2024-05-02T00:00:00Z"`, "fail "}; !slices.Equal(seen, want) {
		t.Errorf("device saw %q, want %q", seen, want)
	}
	mu.Unlock()

	checkFormB(t, "offline", e.owner("POST", "/digitaltwins/offline/commands/reboot", `{}`), http.StatusNotFound, 404103)
	checkFormA(t, "unknown device", e.owner("POST", "/digitaltwins/ghost/commands/reboot", `{}`), http.StatusNotFound, "DeviceNotFound")
	checkFormB(t, "bad timeout", e.owner("POST", "/digitaltwins/d1/commands/reboot?responseTimeoutInSeconds=soon", `{}`), http.StatusBadRequest, 400004)
	checkFormB(t, "timeout out of range", e.owner("POST", "/digitaltwins/d1/commands/reboot?responseTimeoutInSeconds=1", `{}`), http.StatusBadRequest, 400004)
	checkFormB(t, "payload not JSON", e.owner("POST", "/digitaltwins/d1/commands/reboot", `not json`), http.StatusBadRequest, 400004)
	checkFormB(t, "star in component", e.owner("POST", "/digitaltwins/d1/components/a*b/commands/reboot", `{}`), http.StatusBadRequest, 400004)
}
