// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// bulkResult mirrors the SDKs' BulkRegistryOperationResult
// (C# Registry/Models/BulkRegistryOperationResult.cs,
// DeviceRegistryOperationError.cs).
type bulkResult struct {
	IsSuccessful bool            `json:"isSuccessful"`
	Errors       []bulkItemError `json:"errors"`
	Warnings     []any           `json:"warnings"`
}

type bulkItemError struct {
	DeviceID    string `json:"deviceId"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
	Operation   string `json:"operation,omitempty"`
}

func TestBulkCreate(t *testing.T) {
	e := newEnv(t)
	r := e.owner("POST", "/devices", []map[string]any{
		{"id": "b1", "importMode": "create"},
		{"id": "b2", "importMode": "create", "status": "disabled",
			"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": b64(32), "secondaryKey": b64(32)}}},
		{"id": "b3", "importMode": "create", "tags": map[string]any{"site": "B7"}, "properties": map[string]any{"desired": map[string]any{"fan": 3}}},
	})
	wantStatus(t, "bulk create", r, http.StatusOK)
	if diff := cmp.Diff(`{"isSuccessful":true,"errors":[],"warnings":[]}`, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	b2 := decode[hub.Device](t, e.owner("GET", "/devices/b2", nil))
	if b2.Status != "disabled" || b2.Authentication.SymmetricKey.PrimaryKey != b64(32) {
		t.Errorf("got b2 %+v, want disabled with the given key", b2)
	}
	b1 := decode[hub.Device](t, e.owner("GET", "/devices/b1", nil))
	if b1.Authentication.SymmetricKey == nil || b1.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Errorf("got b1 authentication %+v, want generated keys", b1.Authentication)
	}
	tw := decode[map[string]any](t, e.owner("GET", "/twins/b3", nil))
	if diff := cmp.Diff(map[string]any{"site": "B7"}, tw["tags"]); diff != "" {
		t.Errorf("b3 tags (-want +got):\n%s", diff)
	}
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if desired["fan"] != 3.0 {
		t.Errorf("got b3 desired %v, want fan 3", desired)
	}
}

func TestBulkPerItemErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("exists")
	r := e.owner("POST", "/devices", []map[string]any{
		{"id": "new1", "importMode": "create"},
		{"id": "exists", "importMode": "create"},
		{"id": "bad id", "importMode": "create"},
		{"id": "ghost", "importMode": "delete"},
		{"id": "new2", "importMode": "explode"},
	})
	// The REST reference answers a bulk request with failures 400 and the
	// same BulkRegistryOperationResult body.
	wantStatus(t, "bulk", r, http.StatusBadRequest)
	got := decode[bulkResult](t, r)
	want := bulkResult{
		IsSuccessful: false,
		Errors: []bulkItemError{
			{DeviceID: "exists", ErrorCode: "DeviceAlreadyExists", Operation: "create"},
			{DeviceID: "bad id", ErrorCode: "ArgumentInvalid", Operation: "create"},
			{DeviceID: "ghost", ErrorCode: "DeviceNotFound", Operation: "delete"},
			{DeviceID: "new2", ErrorCode: "ArgumentInvalid", Operation: "explode"},
		},
		Warnings: []any{},
	}
	for i := range got.Errors {
		if got.Errors[i].ErrorStatus == "" {
			t.Errorf("error %d has no errorStatus", i)
		}
		got.Errors[i].ErrorStatus = ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	// The items that could succeed did.
	wantStatus(t, "new1 exists", e.owner("GET", "/devices/new1", nil), http.StatusOK)
}

func TestBulkRequestErrors(t *testing.T) {
	e := newEnv(t)
	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = map[string]any{"id": "d" + strconv.Itoa(i), "importMode": "create"}
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"duplicate id", []map[string]any{{"id": "x", "importMode": "create"}, {"id": "x", "importMode": "delete"}}, 400, "DeviceDefinedMultipleTimes"},
		{"more than 100", many, 413, "TooManyDevices"},
		{"empty", []map[string]any{}, 400, "ArgumentInvalid"},
		{"not an array", map[string]any{"id": "x"}, 400, "ArgumentInvalid"},
		{"not JSON", "[{", 400, "ArgumentInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			checkFormA(t, "bulk", e.owner("POST", "/devices", tc.body), tc.status, tc.code)
		})
	}
	// A refused request changed nothing.
	r := e.owner("GET", "/devices", nil)
	if string(r.body) != "[]" {
		t.Errorf("got devices %s after refused requests, want none", r.body)
	}
}

// TestBulkNodeModes sends the import modes as Node's Registry spells them
// (updateDevices/removeDevices: 'Update', 'UpdateIfMatchETag', 'Delete',
// 'DeleteIfMatchETag'; azure-iothub registry.ts) with the device objects it
// got back from the registry, deviceId renamed to id.
func TestBulkNodeModes(t *testing.T) {
	e := newEnv(t)
	d1, d2 := e.createDevice("n1"), e.createDevice("n2")
	asItem := func(d hub.Device, mode string) map[string]any {
		return map[string]any{"id": d.DeviceID, "etag": d.ETag, "status": "disabled",
			"authentication": d.Authentication, "importMode": mode}
	}
	r := e.owner("POST", "/devices", []map[string]any{asItem(d1, "Update"), asItem(d2, "UpdateIfMatchETag")})
	wantStatus(t, "update", r, http.StatusOK)
	for _, id := range []string{"n1", "n2"} {
		if got := decode[hub.Device](t, e.owner("GET", "/devices/"+id, nil)); got.Status != "disabled" {
			t.Errorf("got %s status %q, want disabled", id, got.Status)
		}
	}

	// The etags are stale now.
	r = e.owner("POST", "/devices", []map[string]any{asItem(d1, "DeleteIfMatchETag")})
	wantStatus(t, "delete with stale etag", r, http.StatusBadRequest)
	if res := decode[bulkResult](t, r); len(res.Errors) != 1 || res.Errors[0].ErrorCode != "PreconditionFailed" {
		t.Errorf("got %+v, want one PreconditionFailed", res)
	}

	r = e.owner("POST", "/devices", []map[string]any{asItem(d1, "Delete"), asItem(d2, "Delete")})
	wantStatus(t, "delete", r, http.StatusOK)
	for _, id := range []string{"n1", "n2"} {
		wantStatus(t, "GET "+id, e.owner("GET", "/devices/"+id, nil), http.StatusNotFound)
	}
}

func TestBulkModes(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("u1")
	e.createDevice("u2")
	e.createModule("u1", "m1")

	tests := []struct {
		name   string
		item   map[string]any
		status int
		code   string // per-item error, "" for none
		check  func(t *testing.T, e *env)
	}{
		{
			name:   "update without etag",
			item:   map[string]any{"id": "u1", "importMode": "update", "status": "disabled"},
			status: 200,
			check: func(t *testing.T, e *env) {
				got := decode[hub.Device](t, e.owner("GET", "/devices/u1", nil))
				if got.Status != "disabled" || got.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
					t.Errorf("got %+v, want disabled with the old keys", got)
				}
			},
		},
		{
			name:   "update registers a missing device",
			item:   map[string]any{"id": "u3", "importMode": "update"},
			status: 200,
			check: func(t *testing.T, e *env) {
				wantStatus(t, "GET u3", e.owner("GET", "/devices/u3", nil), 200)
			},
		},
		{
			name:   "updateIfMatchETag without etag",
			item:   map[string]any{"id": "u1", "importMode": "updateIfMatchETag"},
			status: 400, code: "ArgumentInvalid",
		},
		{
			name:   "updateIfMatchETag with stale etag",
			item:   map[string]any{"id": "u1", "importMode": "updateIfMatchETag", "eTag": d.ETag},
			status: 400, code: "PreconditionFailed",
		},
		{
			name:   "updateTwin with tags",
			item:   map[string]any{"id": "u2", "importMode": "updateTwin", "tags": map[string]any{"floor": 3}},
			status: 200,
			check: func(t *testing.T, e *env) {
				tw := decode[map[string]any](t, e.owner("GET", "/twins/u2", nil))
				if diff := cmp.Diff(map[string]any{"floor": 3.0}, tw["tags"]); diff != "" {
					t.Errorf("tags (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "updateTwinIfMatchETag with stale twin etag",
			item:   map[string]any{"id": "u2", "importMode": "updateTwinIfMatchETag", "twinETag": "AAAAAAAAAAE=", "tags": map[string]any{"floor": 4}},
			status: 400, code: "PreconditionFailed",
		},
		{
			name:   "updateTwin of a module",
			item:   map[string]any{"id": "u1", "moduleId": "m1", "importMode": "updateTwin", "properties": map[string]any{"desired": map[string]any{"x": 1}}},
			status: 200,
			check: func(t *testing.T, e *env) {
				tw := decode[map[string]any](t, e.owner("GET", "/twins/u1/modules/m1", nil))
				if x := tw["properties"].(map[string]any)["desired"].(map[string]any)["x"]; x != 1.0 {
					t.Errorf("got module desired x %v, want 1", x)
				}
			},
		},
		{
			name:   "updateTwin of a missing device",
			item:   map[string]any{"id": "ghost", "importMode": "updateTwin", "tags": map[string]any{"a": 1}},
			status: 400, code: "DeviceNotFound",
		},
		{
			name:   "create a module",
			item:   map[string]any{"id": "u2", "moduleId": "m9", "importMode": "create"},
			status: 200,
			check: func(t *testing.T, e *env) {
				wantStatus(t, "GET module", e.owner("GET", "/devices/u2/modules/m9", nil), 200)
			},
		},
		{
			name:   "delete a module",
			item:   map[string]any{"id": "u2", "moduleId": "m9", "importMode": "delete"},
			status: 200,
			check: func(t *testing.T, e *env) {
				wantStatus(t, "GET module", e.owner("GET", "/devices/u2/modules/m9", nil), 404)
			},
		},
		{
			name:   "missing importMode",
			item:   map[string]any{"id": "u2"},
			status: 400, code: "ArgumentNull",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.owner("POST", "/devices", []map[string]any{tc.item})
			wantStatus(t, "bulk", r, tc.status)
			res := decode[bulkResult](t, r)
			if tc.code == "" {
				if !res.IsSuccessful || len(res.Errors) != 0 {
					t.Fatalf("got %+v, want success", res)
				}
				tc.check(t, e)
				return
			}
			if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].ErrorCode != tc.code {
				t.Errorf("got %+v, want one %s error", res, tc.code)
			}
		})
	}
}
