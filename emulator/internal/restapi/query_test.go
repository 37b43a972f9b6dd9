// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"sort"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func (e *env) query(q string, pageSize int, continuation string) response {
	e.t.Helper()
	h := map[string]string{}
	if pageSize > 0 {
		h["x-ms-max-item-count"] = strconv.Itoa(pageSize)
	}
	if continuation != "" {
		h["x-ms-continuation"] = continuation
	}
	return e.do(request{method: "POST", path: "/devices/query", auth: e.token(hub.OwnerPolicy),
		body: map[string]string{"query": q}, header: h})
}

func TestQueryTwins(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"q1", "q2", "q3"} {
		e.createDevice(id)
	}
	wantStatus(t, "tag", e.owner("PATCH", "/twins/q2", map[string]any{"tags": map[string]any{"building": "B7"}}), 200)

	r := e.query("SELECT * FROM devices", 0, "")
	wantStatus(t, "query", r, http.StatusOK)
	if got := r.header.Get("x-ms-item-type"); got != "Twin" {
		t.Errorf("got x-ms-item-type %q, want Twin", got)
	}
	if got := r.header.Get("x-ms-continuation"); got != "" {
		t.Errorf("got x-ms-continuation %q on the only page, want none", got)
	}
	twins := decode[[]map[string]any](t, r)
	if len(twins) != 3 {
		t.Fatalf("got %d twins, want 3: %s", len(twins), r.body)
	}
	for _, k := range twinFields {
		if _, ok := twins[0][k]; !ok {
			t.Errorf("query twin lacks %q", k)
		}
	}
	// A query twin is the twin GET returns.
	get := decode[map[string]any](t, e.owner("GET", "/twins/q2", nil))
	if diff := cmp.Diff(get, twins[1]); diff != "" {
		t.Errorf("query twin differs from GET (-get +query):\n%s", diff)
	}

	r = e.query("SELECT * FROM devices WHERE tags.building = 'B7'", 0, "")
	wantStatus(t, "filtered query", r, http.StatusOK)
	if got := decode[[]map[string]any](t, r); len(got) != 1 || got[0]["deviceId"] != "q2" {
		t.Errorf("got %s, want only q2", r.body)
	}

	r = e.query("SELECT deviceId FROM devices", 0, "")
	wantStatus(t, "projection", r, http.StatusOK)
	if got := r.header.Get("x-ms-item-type"); got != "Raw" {
		t.Errorf("got x-ms-item-type %q for a projection, want Raw", got)
	}
}

// TestQueryPaging walks every page the way the SDKs do: until a page comes
// back without x-ms-continuation.
func TestQueryPaging(t *testing.T) {
	tests := []struct {
		name    string
		devices int
		pages   int
	}{
		{"three pages", 5, 3},
		// C# QueryClientE2ETests.TwinQuery_CustomPaginationWorks: a full last
		// page has no continuation.
		{"full last page", 4, 2},
		{"one full page", 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for i := 0; i < tc.devices; i++ {
				e.createDevice("p" + strconv.Itoa(i))
			}
			var seen []string
			cont := ""
			for page := 1; ; page++ {
				if page > tc.pages {
					t.Fatalf("more than %d pages", tc.pages)
				}
				r := e.query("SELECT * FROM devices", 2, cont)
				wantStatus(t, "page "+strconv.Itoa(page), r, http.StatusOK)
				items := decode[[]map[string]any](t, r)
				if len(items) == 0 || len(items) > 2 {
					t.Fatalf("page %d has %d items, want 1 or 2", page, len(items))
				}
				for _, it := range items {
					seen = append(seen, it["deviceId"].(string))
				}
				cont = r.header.Get("x-ms-continuation")
				if cont == "" {
					if page != tc.pages {
						t.Errorf("got %d pages, want %d", page, tc.pages)
					}
					break
				}
			}
			var want []string
			for i := 0; i < tc.devices; i++ {
				want = append(want, "p"+strconv.Itoa(i))
			}
			sort.Strings(seen)
			if diff := cmp.Diff(want, seen); diff != "" {
				t.Errorf("devices seen across pages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	tests := []struct {
		name string
		req  request
		code string
	}{
		{"invalid query", request{body: map[string]string{"query": "SELEKT * FROM devices"}}, "ArgumentInvalid"},
		{"unknown collection", request{body: map[string]string{"query": "SELECT * FROM nothing"}}, "ArgumentInvalid"},
		{"empty query", request{body: map[string]string{"query": ""}}, "ArgumentNull"},
		{"body not JSON", request{body: "query"}, "ArgumentInvalid"},
		{"bad page size", request{body: map[string]string{"query": "SELECT * FROM devices"}, header: map[string]string{"x-ms-max-item-count": "many"}}, "ArgumentInvalid"},
		{"foreign continuation", request{body: map[string]string{"query": "SELECT * FROM devices"}, header: map[string]string{"x-ms-continuation": "bm90IG1pbmU"}}, "ArgumentInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			req := tc.req
			req.method, req.path, req.auth = "POST", "/devices/query", e.token(hub.OwnerPolicy)
			checkFormA(t, "query", e.do(req), http.StatusBadRequest, tc.code)
		})
	}
}

func TestStatistics(t *testing.T) {
	e := newEnv(t)
	r := e.owner("GET", "/statistics/devices", nil)
	wantStatus(t, "empty registry", r, http.StatusOK)
	if diff := cmp.Diff(`{"totalDeviceCount":0,"enabledDeviceCount":0,"disabledDeviceCount":0}`, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	e.createDevice("a")
	e.createDevice("b")
	wantStatus(t, "create disabled", e.owner("PUT", "/devices/c", map[string]any{"status": "disabled"}), http.StatusOK)
	e.createModule("a", "m1") // modules are not devices
	r = e.owner("GET", "/statistics/devices", nil)
	wantStatus(t, "registry statistics", r, http.StatusOK)
	if diff := cmp.Diff(`{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}`, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	r = e.owner("GET", "/statistics/service", nil)
	wantStatus(t, "service statistics", r, http.StatusOK)
	if string(r.body) != `{"connectedDeviceCount":0}` {
		t.Errorf("got %s, want no connected devices", r.body)
	}
	e.connect(hub.Identity{DeviceID: "a"}, nil)
	e.connect(hub.Identity{DeviceID: "a", ModuleID: "m1"}, nil)
	r = e.owner("GET", "/statistics/service", nil)
	if string(r.body) != `{"connectedDeviceCount":1}` {
		t.Errorf("got %s with one device and its module connected, want 1", r.body)
	}
	d := decode[hub.Device](t, e.owner("GET", "/devices/a", nil))
	if d.ConnectionState != "Connected" || !d.ConnectionStateUpdatedTime.Equal(testNow) {
		t.Errorf("got connection state %q at %v, want Connected at %v", d.ConnectionState, d.ConnectionStateUpdatedTime.Time, testNow)
	}
}
