// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

const (
	thumb1 = "0123456789ABCDEF0123456789ABCDEF01234567"
	thumb2 = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"
)

func b64(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func TestCreateDevice(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		body    map[string]any
		check   func(t *testing.T, d hub.Device)
		errCode string // "" for success
	}{
		{
			name: "Node empty keys are generated",
			body: map[string]any{"authentication": nodeEmptyKeys()},
			check: func(t *testing.T, d hub.Device) {
				k := d.Authentication.SymmetricKey
				if d.Authentication.Type != "sas" || k == nil {
					t.Fatalf("got authentication %+v, want sas keys", d.Authentication)
				}
				for _, key := range []string{k.PrimaryKey, k.SecondaryKey} {
					b, err := base64.StdEncoding.DecodeString(key)
					if err != nil || len(b) != 32 {
						t.Errorf("got key %q, want base64 of 32 bytes", key)
					}
				}
				if k.PrimaryKey == k.SecondaryKey {
					t.Errorf("got equal primary and secondary keys %q", k.PrimaryKey)
				}
			},
		},
		{
			name: "no authentication at all",
			body: map[string]any{},
			check: func(t *testing.T, d hub.Device) {
				if d.Authentication.Type != "sas" || d.Authentication.SymmetricKey.PrimaryKey == "" {
					t.Errorf("got authentication %+v, want generated sas keys", d.Authentication)
				}
			},
		},
		{
			name: "given keys are kept",
			body: map[string]any{"authentication": map[string]any{"type": "sas",
				"symmetricKey": map[string]any{"primaryKey": b64(16), "secondaryKey": b64(64)}}},
			check: func(t *testing.T, d hub.Device) {
				want := hub.SymmetricKey{PrimaryKey: b64(16), SecondaryKey: b64(64)}
				if diff := cmp.Diff(want, *d.Authentication.SymmetricKey); diff != "" {
					t.Errorf("keys (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "key not base64",
			body:    map[string]any{"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": "not base64!", "secondaryKey": b64(32)}}},
			errCode: "ArgumentInvalid",
		},
		{
			name:    "key too short",
			body:    map[string]any{"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": b64(32), "secondaryKey": b64(15)}}},
			errCode: "ArgumentInvalid",
		},
		{
			name:    "key too long",
			body:    map[string]any{"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": b64(65), "secondaryKey": b64(32)}}},
			errCode: "ArgumentInvalid",
		},
		{
			name: "selfSigned with two thumbprints",
			body: map[string]any{"authentication": map[string]any{"type": "selfSigned",
				"x509Thumbprint": map[string]any{"primaryThumbprint": thumb1, "secondaryThumbprint": strings.ToLower(thumb2)}}},
			check: func(t *testing.T, d hub.Device) {
				tp := d.Authentication.X509Thumbprint
				if d.Authentication.Type != "selfSigned" || tp == nil || tp.PrimaryThumbprint == nil || tp.SecondaryThumbprint == nil {
					t.Fatalf("got authentication %+v, want selfSigned with thumbprints", d.Authentication)
				}
				if *tp.PrimaryThumbprint != thumb1 || *tp.SecondaryThumbprint != thumb2 {
					t.Errorf("got thumbprints %s, %s, want %s, %s", *tp.PrimaryThumbprint, *tp.SecondaryThumbprint, thumb1, thumb2)
				}
			},
		},
		{
			name: "selfSigned with the primary only",
			body: map[string]any{"authentication": map[string]any{"type": "selfSigned",
				"x509Thumbprint": map[string]any{"primaryThumbprint": thumb1, "secondaryThumbprint": nil}}},
			check: func(t *testing.T, d hub.Device) {
				if tp := d.Authentication.X509Thumbprint; tp.SecondaryThumbprint != nil {
					t.Errorf("got secondary thumbprint %q, want null", *tp.SecondaryThumbprint)
				}
			},
		},
		{
			// The registry model says at least one of the two thumbprints
			// is required, and an empty string is how some callers say "none".
			name: "selfSigned with the secondary only",
			body: map[string]any{"authentication": map[string]any{"type": "selfSigned",
				"x509Thumbprint": map[string]any{"primaryThumbprint": "", "secondaryThumbprint": thumb2}}},
			check: func(t *testing.T, d hub.Device) {
				tp := d.Authentication.X509Thumbprint
				if tp.SecondaryThumbprint == nil || *tp.SecondaryThumbprint != thumb2 {
					t.Errorf("got %+v, want secondary thumbprint %s", tp, thumb2)
				}
			},
		},
		{
			name:    "selfSigned without thumbprints",
			body:    map[string]any{"authentication": map[string]any{"type": "selfSigned", "x509Thumbprint": map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}}},
			errCode: "ArgumentInvalid",
		},
		{
			name:    "selfSigned with a bad thumbprint",
			body:    map[string]any{"authentication": map[string]any{"type": "selfSigned", "x509Thumbprint": map[string]any{"primaryThumbprint": "abc"}}},
			errCode: "ArgumentInvalid",
		},
		{
			name: "certificateAuthority",
			body: map[string]any{"authentication": map[string]any{"type": "certificateAuthority"}},
			check: func(t *testing.T, d hub.Device) {
				if d.Authentication.Type != "certificateAuthority" {
					t.Errorf("got type %q, want certificateAuthority", d.Authentication.Type)
				}
			},
		},
		{
			name:    "unknown authentication type",
			body:    map[string]any{"authentication": map[string]any{"type": "password"}},
			errCode: "ArgumentInvalid",
		},
		{
			name: "disabled with a reason",
			body: map[string]any{"status": "disabled", "statusReason": "maintenance"},
			check: func(t *testing.T, d hub.Device) {
				if d.Status != "disabled" || d.StatusReason == nil || *d.StatusReason != "maintenance" {
					t.Errorf("got status %q reason %v, want disabled/maintenance", d.Status, d.StatusReason)
				}
			},
		},
		{
			name:    "unknown status",
			body:    map[string]any{"status": "sleeping"},
			errCode: "ArgumentInvalid",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			id := "dev" + strconv.Itoa(i)
			tc.body["deviceId"] = id
			r := e.owner("PUT", "/devices/"+id, tc.body)
			if tc.errCode != "" {
				checkFormA(t, "PUT", r, http.StatusBadRequest, tc.errCode)
				wantStatus(t, "GET after failed create", e.owner("GET", "/devices/"+id, nil), http.StatusNotFound)
				return
			}
			wantStatus(t, "PUT", r, http.StatusOK)
			if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
				t.Errorf("got Content-Type %q, want application/json", ct)
			}
			d := decode[hub.Device](t, r)
			if d.DeviceID != id || d.ETag == "" || d.GenerationID == "" || d.ConnectionState != "Disconnected" {
				t.Errorf("got %+v, want id %s with etag, generationId, Disconnected", d, id)
			}
			tc.check(t, d)
			got := decode[hub.Device](t, e.owner("GET", "/devices/"+id, nil))
			if diff := cmp.Diff(d, got); diff != "" {
				t.Errorf("GET differs from the PUT answer (-put +get):\n%s", diff)
			}
		})
	}
}

// TestDeviceJSONShape checks the wire names of a device (iothub-protocol.md §6.2).
func TestDeviceJSONShape(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	r := e.owner("GET", "/devices/d1", nil)
	wantStatus(t, "GET", r, 200)
	m := decode[map[string]any](t, r)
	for _, k := range []string{"deviceId", "generationId", "etag", "connectionState", "status", "statusReason",
		"connectionStateUpdatedTime", "statusUpdatedTime", "lastActivityTime", "cloudToDeviceMessageCount",
		"authentication", "capabilities"} {
		if _, ok := m[k]; !ok {
			t.Errorf("device JSON lacks %q: %s", k, r.body)
		}
	}
	if m["statusUpdatedTime"] != "0001-01-01T00:00:00Z" || m["lastActivityTime"] != "0001-01-01T00:00:00Z" {
		t.Errorf("got never-set times %v, %v, want 0001-01-01T00:00:00Z", m["statusUpdatedTime"], m["lastActivityTime"])
	}
	auth := m["authentication"].(map[string]any)
	want := map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
	if diff := cmp.Diff(want, auth["x509Thumbprint"]); diff != "" {
		t.Errorf("x509Thumbprint of a sas device (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"iotEdge": false}, m["capabilities"]); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
}

func TestCreateDuplicateDevice(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	r := e.owner("PUT", "/devices/d1", map[string]any{"deviceId": "d1"})
	b := checkFormA(t, "second create", r, http.StatusConflict, "DeviceAlreadyExists")
	if !strings.Contains(b.Message, "d1") {
		t.Errorf("got Message %q, want it to name the device", b.Message)
	}
}

func TestGetUnknownDevice(t *testing.T) {
	e := newEnv(t)
	r := e.owner("GET", "/devices/nope", nil)
	b := checkFormA(t, "GET", r, http.StatusNotFound, "DeviceNotFound")
	// Node reads the second segment of Message as the error text.
	if parts := strings.SplitN(b.Message, ";", 2); len(parts) != 2 || !strings.Contains(parts[1], "nope") {
		t.Errorf("got Message %q, want 'ErrorCode:DeviceNotFound;<text naming nope>'", b.Message)
	}
}

func TestUpdateDevice(t *testing.T) {
	e := newEnv(t)
	created := e.createDevice("d1")

	// Node's update sends If-Match "*", quoted, and the whole device back.
	created.Status = "disabled"
	reason := "stolen"
	created.StatusReason = &reason
	r := e.ownerIf("PUT", "/devices/d1", `"*"`, created)
	wantStatus(t, "update with \"*\"", r, http.StatusOK)
	upd := decode[hub.Device](t, r)
	if upd.ETag == created.ETag {
		t.Errorf("etag stayed %q after an update, want a new one", upd.ETag)
	}
	if upd.GenerationID != created.GenerationID {
		t.Errorf("got generationId %q after an update, want %q", upd.GenerationID, created.GenerationID)
	}
	if upd.Status != "disabled" || !upd.StatusUpdatedTime.Equal(testNow) {
		t.Errorf("got status %q updated %v, want disabled at %v", upd.Status, upd.StatusUpdatedTime.Time, testNow)
	}
	if diff := cmp.Diff(created.Authentication, upd.Authentication); diff != "" {
		t.Errorf("keys changed on an update that sent them back (-before +after):\n%s", diff)
	}

	// The current etag, quoted as Node and C# send it, matches.
	upd.Status = "enabled"
	r = e.ownerIf("PUT", "/devices/d1", `"`+upd.ETag+`"`, upd)
	wantStatus(t, "update with current etag", r, http.StatusOK)
	upd2 := decode[hub.Device](t, r)

	// A stale etag does not.
	r = e.ownerIf("PUT", "/devices/d1", `"`+upd.ETag+`"`, upd2)
	checkFormA(t, "update with stale etag", r, http.StatusPreconditionFailed, "PreconditionFailed")

	// An update that leaves the keys empty keeps them.
	r = e.ownerIf("PUT", "/devices/d1", "*", map[string]any{"deviceId": "d1", "authentication": nodeEmptyKeys()})
	wantStatus(t, "update with empty keys", r, http.StatusOK)
	if got := decode[hub.Device](t, r); got.Authentication.SymmetricKey.PrimaryKey != created.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("got primary key %q after an update with empty keys, want %q", got.Authentication.SymmetricKey.PrimaryKey, created.Authentication.SymmetricKey.PrimaryKey)
	}

	// Replacing the keys works.
	r = e.ownerIf("PUT", "/devices/d1", "*", map[string]any{"deviceId": "d1", "authentication": map[string]any{
		"type": "sas", "symmetricKey": map[string]any{"primaryKey": b64(32), "secondaryKey": b64(33)}}})
	wantStatus(t, "update keys", r, http.StatusOK)
	if got := decode[hub.Device](t, r); got.Authentication.SymmetricKey.PrimaryKey != b64(32) {
		t.Errorf("got primary key %q, want %q", got.Authentication.SymmetricKey.PrimaryKey, b64(32))
	}

	// An invalid authentication block on update is refused like on create
	// (FuzzRequests found it answered 500).
	r = e.ownerIf("PUT", "/devices/d1", "*", map[string]any{"deviceId": "d1", "authentication": map[string]any{
		"type": "selfSigned", "x509Thumbprint": map[string]any{"primaryThumbprint": "aa"}}})
	checkFormA(t, "update with a bad thumbprint", r, http.StatusBadRequest, "ArgumentInvalid")
	r = e.ownerIf("PUT", "/devices/d1", "*", map[string]any{"deviceId": "d1", "status": "paused"})
	checkFormA(t, "update with a bad status", r, http.StatusBadRequest, "ArgumentInvalid")

	// Updating a device that does not exist is 404, not a create.
	r = e.ownerIf("PUT", "/devices/ghost", `"*"`, map[string]any{"deviceId": "ghost"})
	checkFormA(t, "update missing device", r, http.StatusNotFound, "DeviceNotFound")
	wantStatus(t, "GET ghost", e.owner("GET", "/devices/ghost", nil), http.StatusNotFound)
}

func TestGenerationIDAfterRecreate(t *testing.T) {
	e := newEnv(t)
	first := e.createDevice("d1")
	wantStatus(t, "delete", e.owner("DELETE", "/devices/d1", nil), http.StatusNoContent)
	second := e.createDevice("d1")
	if second.GenerationID == first.GenerationID {
		t.Errorf("got the same generationId %q after delete and re-create, want a new one", second.GenerationID)
	}
	other := e.createDevice("d2")
	if other.GenerationID == second.GenerationID {
		t.Errorf("two devices share generationId %q", other.GenerationID)
	}
}

func TestDeleteDevice(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		ifMatch func(d hub.Device) string
		status  int
	}{
		{"without If-Match", func(hub.Device) string { return "" }, http.StatusNoContent},
		{"with quoted star", func(hub.Device) string { return `"*"` }, http.StatusNoContent},
		{"with current etag", func(d hub.Device) string { return `"` + d.ETag + `"` }, http.StatusNoContent},
		{"with weak current etag", func(d hub.Device) string { return `W/"` + d.ETag + `"` }, http.StatusNoContent},
		{"with stale etag", func(hub.Device) string { return `"c3RhbGU="` }, http.StatusPreconditionFailed},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			id := "del" + strconv.Itoa(i)
			d := e.createDevice(id)
			r := e.ownerIf("DELETE", "/devices/"+id, tc.ifMatch(d), nil)
			if tc.status == http.StatusPreconditionFailed {
				checkFormA(t, "DELETE", r, tc.status, "PreconditionFailed")
				wantStatus(t, "GET after refused delete", e.owner("GET", "/devices/"+id, nil), http.StatusOK)
				return
			}
			wantStatus(t, "DELETE", r, tc.status)
			if len(r.body) != 0 {
				t.Errorf("got body %q on 204, want none", r.body)
			}
			checkFormA(t, "GET after delete", e.owner("GET", "/devices/"+id, nil), http.StatusNotFound, "DeviceNotFound")
		})
	}
	t.Run("unknown device", func(t *testing.T) {
		e := e.in(t)
		checkFormA(t, "DELETE", e.owner("DELETE", "/devices/nope", nil), http.StatusNotFound, "DeviceNotFound")
	})
}

func TestDeleteDeviceDeletesModulesAndTwin(t *testing.T) {
	e := newEnv(t)
	e.createDevice("d1")
	e.createModule("d1", "m1")
	wantStatus(t, "tag twin", e.owner("PATCH", "/twins/d1", map[string]any{"tags": map[string]any{"site": "a"}}), 200)
	wantStatus(t, "delete", e.owner("DELETE", "/devices/d1", nil), http.StatusNoContent)

	checkFormA(t, "twin after delete", e.owner("GET", "/twins/d1", nil), http.StatusNotFound, "DeviceNotFound")
	checkFormA(t, "module after delete", e.owner("GET", "/devices/d1/modules/m1", nil), http.StatusNotFound, "DeviceNotFound")

	e.createDevice("d1")
	r := e.owner("GET", "/devices/d1/modules", nil)
	wantStatus(t, "list modules of re-created device", r, 200)
	if ms := decode[[]hub.Module](t, r); len(ms) != 0 {
		t.Errorf("got modules %+v on a re-created device, want none", ms)
	}
	tw := decode[map[string]any](t, e.owner("GET", "/twins/d1", nil))
	if diff := cmp.Diff(map[string]any{}, tw["tags"]); diff != "" {
		t.Errorf("tags of re-created device (-want +got):\n%s", diff)
	}
}

func TestListDevices(t *testing.T) {
	e := newEnv(t)
	r := e.owner("GET", "/devices", nil)
	wantStatus(t, "empty list", r, 200)
	if string(r.body) != "[]" {
		t.Errorf("got %s for an empty registry, want []", r.body)
	}
	for _, id := range []string{"c", "a", "b"} {
		e.createDevice(id)
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"all", "", []string{"a", "b", "c"}},
		{"top 2", "?top=2", []string{"a", "b"}},
		{"top 0 means all", "?top=0", []string{"a", "b", "c"}},
		{"top beyond count", "?top=50", []string{"a", "b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.owner("GET", "/devices"+tc.query, nil)
			wantStatus(t, "GET", r, 200)
			var got []string
			for _, d := range decode[[]hub.Device](t, r) {
				got = append(got, d.DeviceID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("bad top", func(t *testing.T) {
		e := e.in(t)
		checkFormA(t, "GET", e.owner("GET", "/devices?top=x", nil), http.StatusBadRequest, "ArgumentInvalid")
	})
}

// TestSpecialCharacterIDs round-trips ids with the characters the hub
// allows, escaped in the path as Node's encodeURIComponent does (and '+'
// left raw, as some clients send it).
func TestSpecialCharacterIDs(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		id   string
		path string
	}{
		{"hash", "a#b", "a%23b"},
		{"dollar", "a$b", "a%24b"},
		{"question mark", "a?b", "a%3Fb"},
		{"raw plus", "a+b", "a+b"},
		{"escaped plus", "a+c", "a%2Bc"},
		{"percent", "a%b", "a%25b"},
		{"dot", ".", "."},
		{"two dots", "..", ".."},
		{"punctuation", "x-:.+%_#*?!(),=@;$'", url.PathEscape("x-:.+%_#*?!(),=@;$'")},
	}
	var want []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.owner("PUT", "/devices/"+tc.path, map[string]any{"deviceId": tc.id})
			wantStatus(t, "create", r, 200)
			if got := decode[hub.Device](t, r).DeviceID; got != tc.id {
				t.Errorf("create answered id %q, want %q", got, tc.id)
			}
			r = e.owner("GET", "/devices/"+tc.path, nil)
			wantStatus(t, "get", r, 200)
			if got := decode[hub.Device](t, r).DeviceID; got != tc.id {
				t.Errorf("get answered id %q, want %q", got, tc.id)
			}
			r = e.owner("GET", "/twins/"+tc.path, nil)
			wantStatus(t, "get twin", r, 200)
			if got := decode[map[string]any](t, r)["deviceId"]; got != tc.id {
				t.Errorf("twin answered id %v, want %q", got, tc.id)
			}
			want = append(want, tc.id)
		})
	}
	var got []string
	for _, d := range decode[[]hub.Device](t, e.owner("GET", "/devices", nil)) {
		got = append(got, d.DeviceID)
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed ids (-want +got):\n%s", diff)
	}
}

func TestInvalidDeviceIDs(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		path string
		body map[string]any
	}{
		{"too long", strings.Repeat("a", 129), nil},
		{"space", "a%20b", nil},
		{"slash", "a%2Fb", nil},
		{"ampersand", "a%26b", nil},
		{"non-ASCII", "%C3%A9", nil},
		{"body and path differ", "pathid", map[string]any{"deviceId": "bodyid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			body := tc.body
			if body == nil {
				body = map[string]any{}
			}
			r := e.owner("PUT", "/devices/"+tc.path, body)
			checkFormA(t, "PUT", r, http.StatusBadRequest, "ArgumentInvalid")
		})
	}
	t.Run("128 characters is fine", func(t *testing.T) {
		e := e.in(t)
		e.createDevice(strings.Repeat("a", 128))
	})
	t.Run("malformed body", func(t *testing.T) {
		e := e.in(t)
		checkFormA(t, "PUT", e.owner("PUT", "/devices/x", "{not json"), http.StatusBadRequest, "ArgumentInvalid")
	})
}

func TestEdgeScopes(t *testing.T) {
	e := newEnv(t)
	r := e.owner("PUT", "/devices/edge1", map[string]any{"deviceId": "edge1", "capabilities": map[string]any{"iotEdge": true}})
	wantStatus(t, "create edge", r, 200)
	edge := decode[hub.Device](t, r)
	wantScope := "ms-azure-iot-edge://edge1-" + edge.GenerationID
	if edge.DeviceScope != wantScope {
		t.Fatalf("got edge deviceScope %q, want %q", edge.DeviceScope, wantScope)
	}

	// The scope survives an update (the caller cannot change it).
	edge.DeviceScope = "ms-azure-iot-edge://something-else"
	r = e.ownerIf("PUT", "/devices/edge1", "*", edge)
	wantStatus(t, "update edge", r, 200)
	if got := decode[hub.Device](t, r).DeviceScope; got != wantScope {
		t.Errorf("got deviceScope %q after update, want %q", got, wantScope)
	}

	// A nested edge names its parent in parentScopes.
	r = e.owner("PUT", "/devices/edge2", map[string]any{"deviceId": "edge2",
		"capabilities": map[string]any{"iotEdge": true}, "parentScopes": []string{wantScope}})
	wantStatus(t, "create nested edge", r, 200)
	edge2 := decode[hub.Device](t, r)
	if diff := cmp.Diff([]string{wantScope}, edge2.ParentScopes); diff != "" {
		t.Errorf("nested edge parentScopes (-want +got):\n%s", diff)
	}

	// A leaf names its parent in deviceScope; the hub copies it to parentScopes.
	r = e.owner("PUT", "/devices/leaf", map[string]any{"deviceId": "leaf", "deviceScope": edge2.DeviceScope})
	wantStatus(t, "create leaf", r, 200)
	leaf := decode[hub.Device](t, r)
	if leaf.DeviceScope != edge2.DeviceScope {
		t.Errorf("got leaf deviceScope %q, want %q", leaf.DeviceScope, edge2.DeviceScope)
	}
	if diff := cmp.Diff([]string{edge2.DeviceScope}, leaf.ParentScopes); diff != "" {
		t.Errorf("leaf parentScopes (-want +got):\n%s", diff)
	}
	tw := decode[map[string]any](t, e.owner("GET", "/twins/leaf", nil))
	if tw["deviceScope"] != edge2.DeviceScope {
		t.Errorf("got twin deviceScope %v, want %q", tw["deviceScope"], edge2.DeviceScope)
	}

	// An edge device has at most one parent and is not its own.
	r = e.owner("PUT", "/devices/edge3", map[string]any{"deviceId": "edge3",
		"capabilities": map[string]any{"iotEdge": true}, "parentScopes": []string{wantScope, edge2.DeviceScope}})
	checkFormA(t, "two parents", r, http.StatusBadRequest, "ArgumentInvalid")

	// PUT /devices/{id} refuses scopes that name no edge device of this hub
	// (the Node e2e suite expects a leaf update to an arbitrary scope to
	// fail), and stores nothing.
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"leaf with an unknown scope", map[string]any{"deviceId": "free", "deviceScope": "someScope1"}},
		{"leaf naming a leaf's scope", map[string]any{"deviceId": "free", "deviceScope": "ms-azure-iot-edge://leaf-" + leaf.GenerationID}},
		{"leaf with parentScopes other than its scope", map[string]any{"deviceId": "free", "deviceScope": wantScope, "parentScopes": []string{edge2.DeviceScope}}},
		{"leaf with two parents", map[string]any{"deviceId": "free", "parentScopes": []string{wantScope, edge2.DeviceScope}}},
		{"edge with an unknown parent", map[string]any{"deviceId": "free", "capabilities": map[string]any{"iotEdge": true}, "parentScopes": []string{"someParentScope1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			checkFormA(t, tc.name, e.owner("PUT", "/devices/free", tc.body), http.StatusBadRequest, "ArgumentInvalid")
			checkFormA(t, "GET after refusal", e.owner("GET", "/devices/free", nil), http.StatusNotFound, "DeviceNotFound")
		})
	}
	// An update of the leaf to an arbitrary scope is refused and changes nothing.
	moved := leaf
	moved.DeviceScope = "b2b5f2d0-arbitrary"
	moved.ParentScopes = nil
	checkFormA(t, "leaf update to an unknown scope", e.ownerIf("PUT", "/devices/leaf", "*", moved), http.StatusBadRequest, "ArgumentInvalid")
	if got := decode[hub.Device](t, e.owner("GET", "/devices/leaf", nil)); got.DeviceScope != edge2.DeviceScope || got.ETag != leaf.ETag {
		t.Errorf("refused update changed the leaf: scope %q etag %q, want %q %q", got.DeviceScope, got.ETag, edge2.DeviceScope, leaf.ETag)
	}
	// A leaf may name its parent in parentScopes alone.
	r = e.owner("PUT", "/devices/leaf2", map[string]any{"deviceId": "leaf2", "parentScopes": []string{wantScope}})
	wantStatus(t, "leaf with parentScopes only", r, 200)
	if got := decode[hub.Device](t, r); got.DeviceScope != wantScope {
		t.Errorf("leaf2 deviceScope: got %q, want %q", got.DeviceScope, wantScope)
	}

	// Bulk operations keep scopes as given, as the C# SDK's end-to-end tests
	// against a real hub expect (RegistryManagerE2ETests.RegistryManager_BulkLifecycle,
	// DevicesClientE2ETests.DevicesClient_AddDevicesAsync_Works).
	r = e.owner("POST", "/devices", []map[string]any{{"id": "free", "importMode": "create", "deviceScope": "someScope1", "parentScopes": []string{"someParentScope1"}}})
	wantStatus(t, "bulk create with arbitrary scopes", r, 200)
	free := decode[hub.Device](t, e.owner("GET", "/devices/free", nil))
	if free.DeviceScope != "someScope1" || !cmp.Equal(free.ParentScopes, []string{"someParentScope1"}) {
		t.Errorf("got scope %q parents %v, want someScope1 [someParentScope1]", free.DeviceScope, free.ParentScopes)
	}

	// Removing a leaf, then the parent edge, then the nested edge works in
	// that order (RegistryManager_AddAndRemoveDeviceWithScope).
	for _, id := range []string{"leaf", "edge1", "edge2"} {
		wantStatus(t, "delete "+id, e.owner("DELETE", "/devices/"+id, nil), http.StatusNoContent)
	}
	// A device read back after its edge is gone can be written back as read.
	leaf2 := decode[hub.Device](t, e.owner("GET", "/devices/leaf2", nil))
	leaf2.Status = "disabled"
	wantStatus(t, "update leaf2 after its edge was deleted", e.ownerIf("PUT", "/devices/leaf2", "*", leaf2), http.StatusOK)
}
