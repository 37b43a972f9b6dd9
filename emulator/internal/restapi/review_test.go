// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Regression tests for review findings.

func TestPutNullIdentityIsArgumentNull(t *testing.T) {
	e := newEnv(t)
	r := e.owner("PUT", "/devices/d1", "null")
	checkFormA(t, "PUT device null", r, http.StatusBadRequest, "ArgumentNull")
	if code := e.owner("GET", "/devices/d1", nil).status; code != http.StatusNotFound {
		t.Fatalf("a null body created the device (GET: %d)", code)
	}
	e.createDevice("d2")
	r = e.owner("PUT", "/devices/d2/modules/m", "null")
	checkFormA(t, "PUT module null", r, http.StatusBadRequest, "ArgumentNull")
}

func TestBatchKeepsPropertyCase(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("cased")
	r := e.do(request{method: "POST", path: "/devices/cased/messages/events", auth: e.deviceToken(d),
		body:   `[{"body":"eA==","properties":{"iothub-app-alertLevel":"high","IOTHUB-MESSAGEID":"m1"}}]`,
		header: map[string]string{"Content-Type": "application/vnd.microsoft.iothub.json"}})
	wantStatus(t, "batch", r, http.StatusNoContent)
	ms, _ := e.hub.Telemetry("cased", "", 0, 0)
	if len(ms) != 1 || ms[0].Properties["alertLevel"] != "high" || ms[0].MessageID != "m1" {
		t.Fatalf("recorded %+v", ms)
	}
}

func TestBatchOverLimitRecordsNothing(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("batchy")
	item := `{"body":"` + strings.Repeat("QUFB", 200*1024/4) + `"}`
	r := e.do(request{method: "POST", path: "/devices/batchy/messages/events", auth: e.deviceToken(d),
		body:   "[" + `{"body":"eA=="},` + item + "," + item + "]",
		header: map[string]string{"Content-Type": "application/vnd.microsoft.iothub.json"}})
	checkFormA(t, "batch over 256 KB", r, http.StatusRequestEntityTooLarge, "MessageTooLarge")
	if ms, _ := e.hub.Telemetry("batchy", "", 0, 0); len(ms) != 0 {
		t.Fatalf("a refused batch recorded %d messages", len(ms))
	}
}

func TestQueryDeviceJobsIsEmpty(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	r := e.query("SELECT * FROM devices.jobs", 0, "")
	wantStatus(t, "jobs query", r, http.StatusOK)
	if string(r.body) != "[]" || r.header.Get("x-ms-item-type") != "DeviceJob" {
		t.Fatalf("got %s (%s), want [] of DeviceJob", r.body, r.header.Get("x-ms-item-type"))
	}
}

func TestTwinCountsQueuedC2D(t *testing.T) {
	e := newEnv(t)
	e.createDevice("q")
	for range 2 {
		wantStatus(t, "send c2d", e.do(request{method: "POST", path: "/emulator/devices/q/messages/devicebound", auth: e.token(hub.OwnerPolicy), body: "x", noVersion: true}), http.StatusOK)
	}
	tw := decode[map[string]any](t, e.owner("GET", "/twins/q", nil))
	if tw["cloudToDeviceMessageCount"] != float64(2) {
		t.Fatalf("twin cloudToDeviceMessageCount: got %v, want 2", tw["cloudToDeviceMessageCount"])
	}
	rows := decode[[]map[string]any](t, e.query("SELECT * FROM devices", 0, ""))
	if len(rows) != 1 || rows[0]["cloudToDeviceMessageCount"] != float64(2) {
		t.Fatalf("query cloudToDeviceMessageCount: got %v", rows)
	}
}

func TestRegistryFaultCoversEveryWrite(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createModule("d1", "m1")
	var ops []string
	e.hub.SetReactor(hub.ReactorFunc(func(op string, id hub.Identity) *hub.Fault {
		if op == hub.OpRegistry {
			ops = append(ops, id.String())
		}
		return nil
	}))
	e.owner("DELETE", "/devices/d1/modules/m1", nil)
	e.owner("PUT", "/devices/d1/modules/m2", map[string]any{})
	e.owner("DELETE", "/devices/d1", nil)
	if got := strings.Join(ops, ","); got != "d1/m1,d1/m2,d1" {
		t.Fatalf("registry faults consulted for %q, want d1/m1,d1/m2,d1", got)
	}
}
