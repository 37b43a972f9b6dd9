// SPDX-License-Identifier: MIT

package restapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// fuzzRoutes are the routes whose bodies and path ids come from the network.
var fuzzRoutes = []struct{ method, path string }{
	{"PUT", "/devices/{id}"},
	{"PUT", "/devices/{id}/modules/m1"},
	{"POST", "/devices"},
	{"PATCH", "/twins/{id}"},
	{"PUT", "/twins/{id}"},
	{"POST", "/twins/{id}/methods"},
	{"POST", "/devices/query"},
	{"PUT", "/configurations/{id}"},
	{"POST", "/configurations/testQueries"},
	{"POST", "/devices/{id}/applyConfigurationContent"},
	{"PATCH", "/digitaltwins/{id}"},
	{"POST", "/digitaltwins/{id}/components/c1/commands/reboot"},
	{"POST", "/jobs/create"},
}

// FuzzRequests sends arbitrary ids, bodies and If-Match values to the
// routes that parse them: the hub must answer every request with a JSON
// error from the catalogue or a success, never a 5xx or a panic.
func FuzzRequests(f *testing.F) {
	f.Add(uint8(0), "d1", "", `{"deviceId":"d1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`)
	f.Add(uint8(0), "d1", "*", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"aa"}}}`)
	f.Add(uint8(0), "e1", "", `{"capabilities":{"iotEdge":true},"parentScopes":["x","y"]}`)
	f.Add(uint8(1), "d1", "", `{"moduleId":"m1","authentication":{"symmetricKey":{"primaryKey":"AAAA"}}}`)
	f.Add(uint8(2), "", "", `[{"id":"b1","importMode":"Create","tags":{"a":1}},{"id":"b1","moduleId":"m","importMode":"updateTwin","properties":{"desired":null}}]`)
	f.Add(uint8(3), "d1", `"AAAAAAAAAAE="`, `{"tags":{"a":{"b":null}},"properties":{"desired":{"x":[1,2]}}}`)
	f.Add(uint8(4), "d1", "", `{"tags":5}`)
	f.Add(uint8(5), "d1", "", `{"methodName":"m","responseTimeoutInSeconds":-1,"payload":{}}`)
	f.Add(uint8(6), "", "", `{"query":"SELECT * FROM devices WHERE tags.a = 1"}`)
	f.Add(uint8(7), "cfg-1", "", `{"targetCondition":"tags.a = 1","priority":2,"content":{"deviceContent":{"properties.desired.x":{"y":null}}},"metrics":{"queries":{"m":"SELECT deviceId FROM devices"}}}`)
	f.Add(uint8(7), "cfg-2", "*", `{"targetCondition":"from devices.modules where tags.b = 'c'","content":{"moduleContent":{"properties.desired":{"z":1}}}}`)
	f.Add(uint8(8), "", "", `{"targetCondition":"tags.x IN [1,","customMetricQueries":{"a":"SELECT COUNT() FROM devices"}}`)
	f.Add(uint8(9), "e1", "", `{"modulesContent":{"$edgeAgent":{"properties.desired":{"modules":{}}}},"deviceContent":{"properties.desired.a.b":1}}`)
	f.Add(uint8(10), "d1", `"AAAAAAAAAAE="`, `[{"op":"add","path":"/c1","value":{"p":{"q":1},"$metadata":{}}},{"op":"remove","path":"/c1/p"}]`)
	f.Add(uint8(11), "d1", "", `{"since":"2024"}`)
	f.Add(uint8(12), "", "", `{"type":"export","outputBlobContainerUri":"https://127.0.0.1:1/a/c?sig=x"}`)
	f.Add(uint8(12), "", "", `{"type":"import","inputBlobContainerUri":"%zz","outputBlobContainerUri":"x"}`)

	db, err := store.OpenTemp()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)
	// Job requests name storage URLs: the fuzzer's must never be dialled.
	noNetwork := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no network in the fuzz test")
	}}}
	h, err := hub.New(db, hub.Config{HostName: testHost, Policies: hub.DefaultPolicies(ownerKey),
		Clock: clock.FromFunc(func() time.Time { return now }), StorageHTTP: noNetwork})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close(); db.Close() })
	handler := New(Options{Hub: h})
	tok, err := sas.NewToken(testHost, hub.OwnerPolicy, ownerKey, now.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, route uint8, id, ifMatch, body string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		if id == "" {
			id = "d1"
		}
		path := strings.ReplaceAll(rt.path, "{id}", escapeSegment(id)) + "?api-version=" + testAPIVersion
		// escapeSegment keeps the target valid, so NewRequest cannot panic.
		req := httptest.NewRequest(rt.method, "https://"+testHost+path, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		if ifMatch != "" && !strings.ContainsAny(ifMatch, "\r\n") {
			req.Header.Set("If-Match", ifMatch)
		}
		// A method call on an offline device waits up to connectTimeout;
		// bound it. The hub may answer a request whose client has gone away
		// with a 500: nobody reads it.
		ctx, cancel := context.WithTimeout(req.Context(), 50*time.Millisecond)
		defer cancel()
		req = req.WithContext(ctx)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code >= 500 && ctx.Err() != nil {
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: got %d %s", rt.method, path, body, w.Code, w.Body.Bytes())
		}
		if w.Code == http.StatusNoContent || w.Code == http.StatusAccepted && w.Body.Len() == 0 {
			return
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "application/json") {
			t.Fatalf("%s %s: got Content-Type %q", rt.method, path, ct)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s with %q: body is not JSON: %s", rt.method, path, body, w.Body.Bytes())
		}
	})
}

// escapeSegment escapes an id as Node's encodeURIComponent does.
func escapeSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
