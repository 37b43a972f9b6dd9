// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestModuleLifecycle(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")

	// Create, as Node's addModule sends it: no If-Match.
	r := e.owner("PUT", "/devices/d1/modules/m1", map[string]any{"deviceId": "d1", "moduleId": "m1",
		"managedBy": "IotEdge", "authentication": nodeEmptyKeys()})
	wantStatus(t, "create", r, http.StatusOK)
	m := decode[hub.Module](t, r)
	if m.DeviceID != "d1" || m.ModuleID != "m1" || m.ETag == "" || m.GenerationID == "" || m.ManagedBy != "IotEdge" {
		t.Errorf("got %+v, want d1/m1 managed by IotEdge with etag and generationId", m)
	}
	if k := m.Authentication.SymmetricKey; k == nil || k.PrimaryKey == "" || k.SecondaryKey == "" {
		t.Errorf("got authentication %+v, want generated keys", m.Authentication)
	}

	// Get.
	r = e.owner("GET", "/devices/d1/modules/m1", nil)
	wantStatus(t, "get", r, http.StatusOK)
	if diff := cmp.Diff(m, decode[hub.Module](t, r)); diff != "" {
		t.Errorf("get differs from create (-create +get):\n%s", diff)
	}

	// Duplicate create.
	r = e.owner("PUT", "/devices/d1/modules/m1", map[string]any{"moduleId": "m1"})
	checkFormA(t, "duplicate", r, http.StatusConflict, "ModuleAlreadyExistsOnDevice")

	// List.
	e.createModule("d1", "m0")
	r = e.owner("GET", "/devices/d1/modules", nil)
	wantStatus(t, "list", r, http.StatusOK)
	var ids []string
	for _, x := range decode[[]hub.Module](t, r) {
		ids = append(ids, x.ModuleID)
	}
	if diff := cmp.Diff([]string{"m0", "m1"}, ids); diff != "" {
		t.Errorf("listed modules (-want +got):\n%s", diff)
	}

	// Update with the quoted etag; the etag changes, the keys stay.
	r = e.ownerIf("PUT", "/devices/d1/modules/m1", `"`+m.ETag+`"`, map[string]any{"deviceId": "d1", "moduleId": "m1",
		"managedBy": "someone", "authentication": nodeEmptyKeys()})
	wantStatus(t, "update", r, http.StatusOK)
	upd := decode[hub.Module](t, r)
	if upd.ETag == m.ETag || upd.ManagedBy != "someone" || upd.GenerationID != m.GenerationID {
		t.Errorf("got %+v after update, want a new etag, managedBy someone and generationId %s", upd, m.GenerationID)
	}
	if diff := cmp.Diff(m.Authentication, upd.Authentication); diff != "" {
		t.Errorf("keys changed on update (-before +after):\n%s", diff)
	}

	// Stale etag on update and delete.
	r = e.ownerIf("PUT", "/devices/d1/modules/m1", `"`+m.ETag+`"`, map[string]any{"moduleId": "m1"})
	checkFormA(t, "update with stale etag", r, http.StatusPreconditionFailed, "PreconditionFailed")
	r = e.ownerIf("DELETE", "/devices/d1/modules/m1", `"`+m.ETag+`"`, nil)
	checkFormA(t, "delete with stale etag", r, http.StatusPreconditionFailed, "PreconditionFailed")

	// Delete with the current etag.
	r = e.ownerIf("DELETE", "/devices/d1/modules/m1", `"`+upd.ETag+`"`, nil)
	wantStatus(t, "delete", r, http.StatusNoContent)
	checkFormA(t, "get after delete", e.owner("GET", "/devices/d1/modules/m1", nil), http.StatusNotFound, "ModuleNotFound")
	checkFormA(t, "module twin after delete", e.owner("GET", "/twins/d1/modules/m1", nil), http.StatusNotFound, "ModuleNotFound")

	// Re-created: a new generation.
	again := e.createModule("d1", "m1")
	if again.GenerationID == m.GenerationID {
		t.Errorf("got generationId %q again after delete and re-create", again.GenerationID)
	}
}

func TestModuleErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	tests := []struct {
		name   string
		method string
		path   string
		ifMat  string
		body   any
		status int
		code   string
	}{
		{"get unknown module", "GET", "/devices/d1/modules/nope", "", nil, 404, "ModuleNotFound"},
		{"get module of unknown device", "GET", "/devices/ghost/modules/m1", "", nil, 404, "DeviceNotFound"},
		{"create on unknown device", "PUT", "/devices/ghost/modules/m1", "", map[string]any{}, 404, "DeviceNotFound"},
		{"list on unknown device", "GET", "/devices/ghost/modules", "", nil, 404, "DeviceNotFound"},
		{"delete unknown module", "DELETE", "/devices/d1/modules/nope", "", nil, 404, "ModuleNotFound"},
		{"delete module of unknown device", "DELETE", "/devices/ghost/modules/nope", "", nil, 404, "DeviceNotFound"},
		{"update unknown module", "PUT", "/devices/d1/modules/nope", "*", map[string]any{}, 404, "ModuleNotFound"},
		{"body module id differs", "PUT", "/devices/d1/modules/m1", "", map[string]any{"moduleId": "other"}, 400, "ArgumentInvalid"},
		{"body device id differs", "PUT", "/devices/d1/modules/m1", "", map[string]any{"deviceId": "other"}, 400, "ArgumentInvalid"},
		{"bad module id", "PUT", "/devices/d1/modules/a%20b", "", map[string]any{}, 400, "ArgumentInvalid"},
		{"bad keys", "PUT", "/devices/d1/modules/m2", "", map[string]any{"authentication": map[string]any{
			"symmetricKey": map[string]any{"primaryKey": "short", "secondaryKey": ""}}}, 400, "ArgumentInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.ownerIf(tc.method, tc.path, tc.ifMat, tc.body)
			checkFormA(t, tc.method+" "+tc.path, r, tc.status, tc.code)
		})
	}
}
