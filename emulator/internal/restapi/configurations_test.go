// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nodeConfiguration is the body Node's Registry.addConfiguration sends: the
// caller's object with schemaVersion filled in.
func nodeConfiguration(id string) map[string]any {
	return map[string]any{
		"id":            id,
		"schemaVersion": "1.0",
		"labels":        map[string]any{"site": "B7"},
		"content": map[string]any{
			"deviceContent": map[string]any{"properties.desired.chiller-water": map[string]any{"temperature": 66, "pressure": 28}},
		},
		"targetCondition": "tags.site='B7'",
		"priority":        20,
		"metrics":         map[string]any{"queries": map[string]any{"waterSettingsPending": "SELECT deviceId FROM devices WHERE properties.reported.chillerWaterSettings.status='pending'"}},
	}
}

func TestConfigurationRoutes(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	wantStatus(t, "tag d1", e.owner("PATCH", "/twins/d1", map[string]any{"tags": map[string]any{"site": "B7"}}), 200)

	r := e.owner("PUT", "/configurations/chiller", nodeConfiguration("chiller"))
	wantStatus(t, "create", r, 200)
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var created map[string]any
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "chiller", "schemaVersion": "1.0", "labels": map[string]any{"site": "B7"},
		"content": map[string]any{
			"deviceContent":  map[string]any{"properties.desired.chiller-water": map[string]any{"temperature": 66.0, "pressure": 28.0}},
			"modulesContent": map[string]any{}, "moduleContent": map[string]any{},
		},
		"targetCondition": "tags.site='B7'", "createdTimeUtc": "2024-05-02T09:20:11.0000000Z",
		"lastUpdatedTimeUtc": "2024-05-02T09:20:11.0000000Z", "priority": 20.0,
		"systemMetrics": map[string]any{
			"results": map[string]any{"targetedCount": 1.0, "appliedCount": 1.0},
			"queries": map[string]any{
				"targetedCount": "select deviceId from devices where tags.site='B7'",
				"appliedCount":  "select deviceId from devices where configurations.[[chiller]].status = 'Applied'",
			},
		},
		"metrics": map[string]any{
			"results": map[string]any{"waterSettingsPending": 0.0},
			"queries": map[string]any{"waterSettingsPending": "SELECT deviceId FROM devices WHERE properties.reported.chillerWaterSettings.status='pending'"},
		},
		"etag": "MQ==",
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Fatalf("created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, decode[map[string]any](t, e.owner("GET", "/configurations/chiller", nil))); diff != "" {
		t.Fatalf("GET (-want +got):\n%s", diff)
	}

	// The device twin shows the configuration and its settings, and the
	// hub's own metric query finds it.
	tw := decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))
	if diff := cmp.Diff(map[string]any{"chiller": map[string]any{"status": "Applied"}}, tw["configurations"]); diff != "" {
		t.Errorf("twin configurations (-want +got):\n%s", diff)
	}
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if !cmp.Equal(desired["chiller-water"], map[string]any{"temperature": 66.0, "pressure": 28.0}) {
		t.Errorf("desired: %v", desired)
	}
	rows := decode[[]map[string]any](t, e.owner("POST", "/devices/query",
		map[string]string{"query": "SELECT deviceId FROM devices WHERE configurations.[[chiller]].status = 'Applied'"}))
	if len(rows) != 1 || rows[0]["deviceId"] != "d1" {
		t.Errorf("query: %v", rows)
	}

	// Node's updateConfiguration sends the fetched object back with its etag.
	upd := nodeConfiguration("chiller")
	upd["priority"] = 1
	upd["etag"], upd["createdTimeUtc"], upd["systemMetrics"] = "MQ==", "2024-05-02T09:20:11.0000000Z", created["systemMetrics"]
	r = e.ownerIf("PUT", "/configurations/chiller", `"MQ=="`, upd)
	wantStatus(t, "update", r, 200)
	if got := decode[map[string]any](t, r); got["etag"] != "Mg==" || got["priority"] != 1.0 {
		t.Errorf("updated: etag %v priority %v", got["etag"], got["priority"])
	}
	checkFormA(t, "stale etag", e.ownerIf("PUT", "/configurations/chiller", `"MQ=="`, upd), http.StatusPreconditionFailed, "PreconditionFailed")
	checkFormA(t, "create existing", e.owner("PUT", "/configurations/chiller", nodeConfiguration("chiller")), http.StatusConflict, "DeviceAlreadyExists")
	checkFormA(t, "update missing", e.ownerIf("PUT", "/configurations/ghost", `"*"`, nodeConfiguration("ghost")), http.StatusNotFound, "DeviceNotFound")
	changed := nodeConfiguration("chiller")
	changed["content"] = map[string]any{"deviceContent": map[string]any{"properties.desired.other": 1}}
	checkFormA(t, "content change", e.ownerIf("PUT", "/configurations/chiller", `"*"`, changed), http.StatusBadRequest, "ArgumentInvalid")

	// List: all, top, and C#'s trailing slash.
	wantStatus(t, "second", e.owner("PUT", "/configurations/another", map[string]any{"id": "another"}), 200)
	ids := func(r response) []string {
		var out []string
		for _, c := range decode[[]map[string]any](t, r) {
			out = append(out, c["id"].(string))
		}
		return out
	}
	if got := ids(e.owner("GET", "/configurations", nil)); !slices.Equal(got, []string{"another", "chiller"}) {
		t.Errorf("list: %v", got)
	}
	if got := ids(e.owner("GET", "/configurations/?top=1", nil)); !slices.Equal(got, []string{"another"}) {
		t.Errorf("list top=1: %v", got)
	}
	checkFormA(t, "bad top", e.owner("GET", "/configurations?top=x", nil), http.StatusBadRequest, "ArgumentInvalid")

	checkFormA(t, "delete with stale etag", e.ownerIf("DELETE", "/configurations/chiller", `"MQ=="`, nil), http.StatusPreconditionFailed, "PreconditionFailed")
	wantStatus(t, "delete", e.ownerIf("DELETE", "/configurations/chiller", `"Mg=="`, nil), http.StatusNoContent)
	checkFormA(t, "get deleted", e.owner("GET", "/configurations/chiller", nil), http.StatusNotFound, "DeviceNotFound")
	checkFormA(t, "delete deleted", e.owner("DELETE", "/configurations/chiller", nil), http.StatusNotFound, "DeviceNotFound")
	tw = decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))
	if _, ok := tw["configurations"]; ok {
		t.Errorf("twin still lists configurations: %v", tw["configurations"])
	}
	if desired := tw["properties"].(map[string]any)["desired"].(map[string]any); desired["chiller-water"] != nil {
		t.Errorf("setting left after delete: %v", desired)
	}
}

func TestConfigurationBadRequests(t *testing.T) {
	e := newEnv(t)
	bad := func(mut func(m map[string]any)) map[string]any {
		m := nodeConfiguration("c1")
		mut(m)
		return m
	}
	tests := []struct {
		name, path string
		body       any
		code       string
	}{
		{"upper-case id", "/configurations/C1", bad(func(m map[string]any) { m["id"] = "C1" }), "ArgumentInvalid"},
		{"id mismatch", "/configurations/c2", nodeConfiguration("c1"), "ArgumentInvalid"},
		{"bad condition", "/configurations/c1", bad(func(m map[string]any) { m["targetCondition"] = "tags.site = = 1" }), "ArgumentInvalid"},
		{"fractional priority", "/configurations/c1", bad(func(m map[string]any) { m["priority"] = 1.5 }), "ArgumentInvalid"},
		{"negative priority", "/configurations/c1", bad(func(m map[string]any) { m["priority"] = -1 }), "ArgumentInvalid"},
		{"bad metric", "/configurations/c1", bad(func(m map[string]any) {
			m["metrics"] = map[string]any{"queries": map[string]any{"x": "SELECT"}}
		}), "ArgumentInvalid"},
		{"bad path", "/configurations/c1", bad(func(m map[string]any) {
			m["content"] = map[string]any{"deviceContent": map[string]any{"desired.x": 1}}
		}), "ArgumentInvalid"},
		{"content not an object", "/configurations/c1", bad(func(m map[string]any) { m["content"] = "x" }), "ArgumentInvalid"},
		{"malformed JSON", "/configurations/c1", `{"id":`, "ArgumentInvalid"},
		{"null body", "/configurations/c1", `null`, "ArgumentNull"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFormA(t, "PUT", e.in(t).owner("PUT", tc.path, tc.body), http.StatusBadRequest, tc.code)
		})
	}
	if got := decode[[]any](t, e.owner("GET", "/configurations", nil)); len(got) != 0 {
		t.Fatalf("rejected configurations were stored: %v", got)
	}
}

func TestConfigurationTestQueries(t *testing.T) {
	e := newEnv(t)
	r := e.owner("POST", "/configurations/testQueries", map[string]any{
		"targetCondition":     "tags.site = ",
		"customMetricQueries": map[string]any{"ok": "SELECT deviceId FROM devices", "bad": "SELECT deviceId FROM nowhere"},
	})
	wantStatus(t, "testQueries", r, 200)
	got := decode[map[string]any](t, r)
	if got["targetConditionError"] == "" || got["customMetricQueryErrors"].(map[string]any)["bad"] == nil ||
		got["customMetricQueryErrors"].(map[string]any)["ok"] != nil {
		t.Errorf("got %v", got)
	}
	r = e.owner("POST", "/configurations/testQueries", map[string]any{"targetCondition": "tags.site = 'B7'"})
	if diff := cmp.Diff(map[string]any{"targetConditionError": "", "customMetricQueryErrors": map[string]any{}}, decode[map[string]any](t, r)); diff != "" {
		t.Errorf("valid queries (-want +got):\n%s", diff)
	}
	checkFormA(t, "null body", e.owner("POST", "/configurations/testQueries", `null`), http.StatusBadRequest, "ArgumentNull")
}

func TestApplyConfigurationContentRoute(t *testing.T) {
	e := newEnv(t)
	e.createDevice("leaf")
	wantStatus(t, "edge", e.owner("PUT", "/devices/edge1", map[string]any{"deviceId": "edge1", "capabilities": map[string]any{"iotEdge": true}}), 200)
	content := map[string]any{"modulesContent": map[string]any{
		"$edgeAgent": map[string]any{"properties.desired": map[string]any{"schemaVersion": "1.1", "modules": map[string]any{}}},
		"$edgeHub":   map[string]any{"properties.desired": map[string]any{"routes": map[string]any{}}},
	}}
	r := e.owner("POST", "/devices/edge1/applyConfigurationContent", content)
	wantStatus(t, "apply", r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %s", r.body)
	}
	mt := decode[map[string]any](t, e.owner("GET", "/twins/edge1/modules/$edgeAgent", nil))
	if d := mt["properties"].(map[string]any)["desired"].(map[string]any); d["schemaVersion"] != "1.1" {
		t.Errorf("$edgeAgent desired: %v", d)
	}
	checkFormA(t, "not an edge device", e.owner("POST", "/devices/leaf/applyConfigurationContent", content), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "unknown device", e.owner("POST", "/devices/ghost/applyConfigurationContent", content), http.StatusNotFound, "DeviceNotFound")
	checkFormA(t, "device content only", e.owner("POST", "/devices/edge1/applyConfigurationContent",
		map[string]any{"deviceContent": map[string]any{"properties.desired.x": 1}}), http.StatusBadRequest, "ArgumentInvalid")
	checkFormA(t, "null", e.owner("POST", "/devices/edge1/applyConfigurationContent", `null`), http.StatusBadRequest, "ArgumentNull")
	checkFormA(t, "malformed", e.owner("POST", "/devices/edge1/applyConfigurationContent", `{"modulesContent":`), http.StatusBadRequest, "ArgumentInvalid")
}
