// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	dev := e.createDevice("devkey")
	owner, _ := e.hub.Policy(hub.OwnerPolicy)
	otherKey := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))

	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"missing header", "", http.StatusUnauthorized},
		{"garbage", "garbage", http.StatusUnauthorized},
		{"bearer", "Bearer abc.def.ghi", http.StatusUnauthorized},
		{"token missing sig", "SharedAccessSignature sr=localhost&skn=iothubowner&se=1900000000", http.StatusUnauthorized},
		{"wrong key", e.tokenWith(testHost, hub.OwnerPolicy, otherKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"unknown policy", e.tokenWith(testHost, "nobody", owner.PrimaryKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"primary key", e.tokenWith(testHost, hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(time.Hour)), http.StatusOK},
		{"secondary key", e.tokenWith(testHost, hub.OwnerPolicy, owner.SecondaryKey, testNow.Add(time.Hour)), http.StatusOK},
		{"host in other case", e.tokenWith("LocalHost", hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(time.Hour)), http.StatusOK},
		{"expired within skew", e.tokenWith(testHost, hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(-4*time.Minute)), http.StatusOK},
		{"expired beyond skew", e.tokenWith(testHost, hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(-6*time.Minute)), http.StatusUnauthorized},
		{"wrong host", e.tokenWith("otherhub.azure-devices.net", hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"device-scoped policy token", e.tokenWith(testHost+"/devices/d1", hub.OwnerPolicy, owner.PrimaryKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"device key token", e.tokenWith(testHost+"/devices/devkey", "", dev.Authentication.SymmetricKey.PrimaryKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"hub-scoped device key token", e.tokenWith(testHost, "", dev.Authentication.SymmetricKey.PrimaryKey, testNow.Add(time.Hour)), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.do(request{method: "GET", path: "/devices/d1", auth: tc.auth})
			if tc.status == http.StatusOK {
				wantStatus(t, "GET", r, http.StatusOK)
				return
			}
			b := checkFormA(t, "GET", r, http.StatusUnauthorized, "IotHubUnauthorizedAccess")
			// The hub says no more than "Unauthorized" to a caller it does not trust.
			if b.Message != "ErrorCode:IotHubUnauthorizedAccess;Unauthorized" {
				t.Errorf("got Message %q, want %q", b.Message, "ErrorCode:IotHubUnauthorizedAccess;Unauthorized")
			}
		})
	}
}

// TestRouteRights runs every route under every default policy: a policy
// with one of the route's rights gets the route's normal answer, any other
// gets 401 (iothub-protocol.md §2.4 and the table in routes.go).
func TestRouteRights(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createModule("d1", "m1")
	wantStatus(t, "create edge device", e.owner("PUT", "/devices/edge1", map[string]any{"deviceId": "edge1", "capabilities": map[string]any{"iotEdge": true}}), 200)
	wantStatus(t, "create configuration", e.owner("PUT", "/configurations/c1", map[string]any{"targetCondition": "*"}), 200)
	policies := []string{hub.OwnerPolicy, "service", "registryRead", "registryReadWrite", "device"}
	const (
		owner = 1 << iota
		service
		registryRead
		registryReadWrite
		device
	)
	readers := owner | registryRead | registryReadWrite
	writers := owner | registryReadWrite
	servicers := owner | service
	twinReaders := readers | servicers

	type route struct {
		name    string
		tmpl    string // the path as routes() declares it
		method  string
		path    func(p string) string // p is the policy name, for per-policy ids
		body    func(p string) any
		setup   func(e *env, p string)
		ok      int
		allowed int
	}
	fixed := func(s string) func(string) string { return func(string) string { return s } }
	cases := []route{
		{name: "list devices", tmpl: "/devices", method: "GET", path: fixed("/devices"), ok: 200, allowed: readers},
		{name: "list devices (Node's path)", tmpl: "/devices/", method: "GET", path: fixed("/devices/"), ok: 200, allowed: readers},
		{name: "bulk", tmpl: "/devices", method: "POST", path: fixed("/devices"), ok: 200, allowed: writers,
			body: func(p string) any { return []map[string]any{{"id": "bulk-" + p, "importMode": "create"}} }},
		{name: "query", tmpl: "/devices/query", method: "POST", path: fixed("/devices/query"), ok: 200, allowed: twinReaders,
			body: func(string) any { return map[string]string{"query": "SELECT * FROM devices"} }},
		{name: "create device", tmpl: "/devices/{id}", method: "PUT", path: func(p string) string { return "/devices/new-" + p }, ok: 200, allowed: writers,
			body: func(string) any { return map[string]any{} }},
		{name: "get device", tmpl: "/devices/{id}", method: "GET", path: fixed("/devices/d1"), ok: 200, allowed: readers},
		{name: "delete device", tmpl: "/devices/{id}", method: "DELETE", path: func(p string) string { return "/devices/del-" + p }, ok: 204, allowed: writers,
			setup: func(e *env, p string) { e.createDevice("del-" + p) }},
		{name: "list modules", tmpl: "/devices/{id}/modules", method: "GET", path: fixed("/devices/d1/modules"), ok: 200, allowed: readers},
		{name: "create module", tmpl: "/devices/{id}/modules/{mid}", method: "PUT", path: func(p string) string { return "/devices/d1/modules/new-" + p }, ok: 200, allowed: writers,
			body: func(string) any { return map[string]any{} }},
		{name: "get module", tmpl: "/devices/{id}/modules/{mid}", method: "GET", path: fixed("/devices/d1/modules/m1"), ok: 200, allowed: readers},
		{name: "delete module", tmpl: "/devices/{id}/modules/{mid}", method: "DELETE", path: func(p string) string { return "/devices/d1/modules/del-" + p }, ok: 204, allowed: writers,
			setup: func(e *env, p string) { e.createModule("d1", "del-"+p) }},
		{name: "get twin", tmpl: "/twins/{id}", method: "GET", path: fixed("/twins/d1"), ok: 200, allowed: twinReaders},
		{name: "patch twin", tmpl: "/twins/{id}", method: "PATCH", path: fixed("/twins/d1"), ok: 200, allowed: servicers,
			body: func(string) any { return map[string]any{"tags": map[string]any{"a": 1}} }},
		{name: "replace twin", tmpl: "/twins/{id}", method: "PUT", path: fixed("/twins/d1"), ok: 200, allowed: servicers,
			body: func(string) any { return map[string]any{"tags": map[string]any{"b": 1}} }},
		{name: "get module twin", tmpl: "/twins/{id}/modules/{mid}", method: "GET", path: fixed("/twins/d1/modules/m1"), ok: 200, allowed: twinReaders},
		{name: "patch module twin", tmpl: "/twins/{id}/modules/{mid}", method: "PATCH", path: fixed("/twins/d1/modules/m1"), ok: 200, allowed: servicers,
			body: func(string) any { return map[string]any{"tags": map[string]any{"a": 1}} }},
		{name: "replace module twin", tmpl: "/twins/{id}/modules/{mid}", method: "PUT", path: fixed("/twins/d1/modules/m1"), ok: 200, allowed: servicers,
			body: func(string) any { return map[string]any{"tags": map[string]any{"b": 1}} }},
		// Nothing is connected: an authorized caller gets 404 DeviceNotOnline.
		{name: "device method", tmpl: "/twins/{id}/methods", method: "POST", path: fixed("/twins/d1/methods"), ok: 404, allowed: servicers,
			body: func(string) any { return map[string]any{"methodName": "m", "responseTimeoutInSeconds": 5} }},
		{name: "module method", tmpl: "/twins/{id}/modules/{mid}/methods", method: "POST", path: fixed("/twins/d1/modules/m1/methods"), ok: 404, allowed: servicers,
			body: func(string) any { return map[string]any{"methodName": "m", "responseTimeoutInSeconds": 5} }},
		{name: "registry statistics", tmpl: "/statistics/devices", method: "GET", path: fixed("/statistics/devices"), ok: 200, allowed: readers},
		{name: "service statistics", tmpl: "/statistics/service", method: "GET", path: fixed("/statistics/service"), ok: 200, allowed: servicers},
		// The feedback queue is empty: an authorized receive gets 204 and
		// an authorized settle of an unknown lock 412.
		{name: "receive feedback", tmpl: "/messages/serviceBound/feedback", method: "GET", path: fixed("/messages/serviceBound/feedback"), ok: 204, allowed: servicers},
		{name: "complete feedback", tmpl: "/messages/serviceBound/feedback/{lock}", method: "DELETE", path: fixed("/messages/serviceBound/feedback/none"), ok: 412, allowed: servicers},
		{name: "abandon feedback", tmpl: "/messages/serviceBound/feedback/{lock}/abandon", method: "POST", path: fixed("/messages/serviceBound/feedback/none/abandon"), ok: 412, allowed: servicers},
		// Import/export jobs: an authorized caller reaches the job checks.
		{name: "create job", tmpl: "/jobs/create", method: "POST", path: fixed("/jobs/create"), ok: 400, allowed: writers,
			body: func(string) any { return map[string]any{"type": "backup"} }},
		{name: "list jobs", tmpl: "/jobs", method: "GET", path: fixed("/jobs"), ok: 200, allowed: readers},
		{name: "get job", tmpl: "/jobs/{job}", method: "GET", path: fixed("/jobs/none"), ok: 404, allowed: readers},
		{name: "cancel job", tmpl: "/jobs/{job}", method: "DELETE", path: fixed("/jobs/none"), ok: 404, allowed: writers},
		{name: "purge", tmpl: "/devices/{id}/commands", method: "DELETE", path: fixed("/devices/d1/commands"), ok: 200, allowed: servicers},
		// Configurations are registry data; digital twins are read like
		// twins, and written and commanded like them.
		{name: "list configurations", tmpl: "/configurations", method: "GET", path: fixed("/configurations"), ok: 200, allowed: readers},
		{name: "list configurations (C#'s path)", tmpl: "/configurations/", method: "GET", path: fixed("/configurations/"), ok: 200, allowed: readers},
		{name: "test queries", tmpl: "/configurations/testQueries", method: "POST", path: fixed("/configurations/testQueries"), ok: 200, allowed: readers,
			body: func(string) any { return map[string]any{"targetCondition": "tags.x = 1"} }},
		{name: "create configuration", tmpl: "/configurations/{id}", method: "PUT", path: func(p string) string { return "/configurations/new-" + strings.ToLower(p) },
			ok: 200, allowed: writers, body: func(string) any { return map[string]any{"targetCondition": "*"} }},
		{name: "get configuration", tmpl: "/configurations/{id}", method: "GET", path: fixed("/configurations/c1"), ok: 200, allowed: readers},
		{name: "delete configuration", tmpl: "/configurations/{id}", method: "DELETE", path: func(p string) string { return "/configurations/del-" + strings.ToLower(p) },
			ok: 204, allowed: writers, setup: func(e *env, p string) {
				wantStatus(e.t, "create", e.owner("PUT", "/configurations/del-"+strings.ToLower(p), map[string]any{}), 200)
			}},
		{name: "apply configuration content", tmpl: "/devices/{id}/applyConfigurationContent", method: "POST", path: fixed("/devices/edge1/applyConfigurationContent"),
			ok: 204, allowed: writers, body: func(string) any {
				return map[string]any{"modulesContent": map[string]any{"$edgeAgent": map[string]any{"properties.desired": map[string]any{}}}}
			}},
		{name: "get digital twin", tmpl: "/digitaltwins/{id}", method: "GET", path: fixed("/digitaltwins/d1"), ok: 200, allowed: twinReaders},
		{name: "update digital twin", tmpl: "/digitaltwins/{id}", method: "PATCH", path: fixed("/digitaltwins/d1"), ok: 202, allowed: servicers,
			body: func(string) any { return []any{map[string]any{"op": "add", "path": "/p", "value": 1}} }},
		{name: "command", tmpl: "/digitaltwins/{id}/commands/{command}", method: "POST", path: fixed("/digitaltwins/d1/commands/reboot"), ok: 404, allowed: servicers},
		{name: "component command", tmpl: "/digitaltwins/{id}/components/{component}/commands/{command}", method: "POST",
			path: fixed("/digitaltwins/d1/components/c1/commands/reboot"), ok: 404, allowed: servicers},
	}
	// Every service route of the table is exercised here.
	covered := map[string]bool{}
	for _, rt := range cases {
		covered[rt.method+" "+rt.tmpl] = true
	}
	for _, rt := range routes() {
		if rt.kind == serviceRoute && !covered[rt.method+" "+rt.path] {
			t.Errorf("service route %s %s is not in this test", rt.method, rt.path)
		}
	}
	for _, rt := range cases {
		for i, p := range policies {
			t.Run(rt.name+"/"+p, func(t *testing.T) {
				e := e.in(t)
				if rt.setup != nil {
					rt.setup(e, p)
				}
				req := request{method: rt.method, path: rt.path(p), auth: e.token(p)}
				if rt.body != nil {
					req.body = rt.body(p)
				}
				r := e.do(req)
				if rt.allowed&(1<<i) != 0 {
					wantStatus(t, rt.method+" "+req.path, r, rt.ok)
					return
				}
				checkFormA(t, rt.method+" "+req.path, r, http.StatusUnauthorized, "IotHubUnauthorizedAccess")
			})
		}
	}
}

func TestAPIVersion(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	tests := []struct {
		name    string
		query   string
		auth    bool
		status  int
		message string
	}{
		{name: "missing", query: "", auth: true, status: 400, message: "ErrorCode:InvalidProtocolVersion;BadRequest"},
		// The version is checked before the credentials.
		{name: "missing without credentials", query: "", auth: false, status: 400, message: "ErrorCode:InvalidProtocolVersion;BadRequest"},
		{name: "empty", query: "?api-version=", auth: true, status: 400, message: "ErrorCode:InvalidProtocolVersion;BadRequest"},
		{name: "malformed", query: "?api-version=latest", auth: true, status: 400, message: "ErrorCode:InvalidProtocolVersion;BadRequest"},
		{name: "GA", query: "?api-version=2021-04-12", auth: true, status: 200},
		{name: "Node generated layer", query: "?api-version=2020-09-30", auth: true, status: 200},
		{name: "preview", query: "?api-version=2020-05-31-preview", auth: true, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			req := request{method: "GET", path: "/devices/d1" + tc.query, noVersion: true}
			if tc.auth {
				req.auth = e.token(hub.OwnerPolicy)
			}
			r := e.do(req)
			if tc.status == 200 {
				wantStatus(t, "GET", r, 200)
				return
			}
			b := checkFormA(t, "GET", r, tc.status, "InvalidProtocolVersion")
			if b.Message != tc.message {
				t.Errorf("got Message %q, want %q", b.Message, tc.message)
			}
		})
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"unknown route", "GET", "/nothing/here", http.StatusNotFound},
		{"unknown sub-route", "GET", "/devices/d1/unknown", http.StatusNotFound},
		{"unknown job route", "POST", "/jobs/create/x", http.StatusNotFound},
		{"PATCH a device", "PATCH", "/devices/d1", http.StatusMethodNotAllowed},
		{"DELETE a twin", "DELETE", "/twins/d1", http.StatusMethodNotAllowed},
		{"GET methods", "GET", "/twins/d1/methods", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.owner(tc.method, tc.path, nil)
			checkFormA(t, tc.method+" "+tc.path, r, tc.status, "InvalidOperation")
		})
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	r := e.do(request{method: "GET", path: "/health", noVersion: true})
	wantStatus(t, "GET /health", r, http.StatusOK)
	if string(r.body) != "ok\n" {
		t.Errorf("got body %q, want %q", r.body, "ok\n")
	}
}

func TestTrackingIDHeader(t *testing.T) {
	e := newEnv(t)
	a := e.owner("GET", "/devices", nil)
	b := e.owner("GET", "/devices/missing", nil)
	ta, tb := a.header.Get("iothub-tracking-id"), b.header.Get("iothub-tracking-id")
	if ta == "" || tb == "" || ta == tb {
		t.Errorf("got tracking ids %q and %q, want two distinct ids", ta, tb)
	}
	// An error body carries the same tracking id as the header.
	eb := checkFormA(t, "GET missing", b, http.StatusNotFound, "DeviceNotFound")
	if want := "Tracking ID:" + tb + "-TimeStamp:05/02/2024 09:20:11"; eb.ExceptionMessage != want {
		t.Errorf("got ExceptionMessage %q, want %q", eb.ExceptionMessage, want)
	}
}
