// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// deviceToken signs a token with the device's primary key.
func (e *env) deviceToken(d hub.Device) string {
	e.t.Helper()
	return e.tokenWith(sas.ResourceURI(testHost, d.DeviceID, ""), "", d.Authentication.SymmetricKey.PrimaryKey, testNow.Add(time.Hour))
}

func TestDeviceSendTelemetry(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("sensor")
	r := e.do(request{method: "POST", path: "/devices/sensor/messages/events", auth: e.deviceToken(d), body: `{"t":21.5}`,
		header: map[string]string{
			"iothub-messageid": "m1", "iothub-correlationid": "c1", "iothub-contenttype": "application/json",
			"iothub-contentencoding": "utf-8", "iothub-app-alert": "high", "iothub-app-Room": "B 7",
		}})
	wantStatus(t, "send", r, http.StatusNoContent)
	ms, err := e.hub.Telemetry("sensor", "", 0, 0)
	if err != nil || len(ms) != 1 {
		t.Fatalf("recorded: %v, %v; want one message", ms, err)
	}
	m := ms[0]
	got := map[string]string{"body": string(m.Body), "mid": m.MessageID, "cid": m.CorrelationID, "ct": m.ContentType, "ce": m.ContentEncoding, "transport": m.Transport}
	want := map[string]string{"body": `{"t":21.5}`, "mid": "m1", "cid": "c1", "ct": "application/json", "ce": "utf-8", "transport": "https"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message fields (-want +got):\n%s", diff)
	}
	// HTTP header names are case-insensitive, so application property
	// names arrive lower-cased.
	if diff := cmp.Diff(map[string]string{"alert": "high", "room": "B 7"}, m.Properties); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
}

func TestDeviceSendBatch(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("batcher")
	body := `[{"body":"` + base64.StdEncoding.EncodeToString([]byte("one")) + `","properties":{"iothub-messageid":"a","iothub-app-k":"v"}},` +
		`{"body":"two","base64Encoded":false,"properties":{"iothub-messageid":"b"}}]`
	r := e.do(request{method: "POST", path: "/devices/batcher/messages/events", auth: e.deviceToken(d), body: body,
		header: map[string]string{"Content-Type": "application/vnd.microsoft.iothub.json"}})
	wantStatus(t, "batch", r, http.StatusNoContent)
	ms, _ := e.hub.Telemetry("batcher", "", 0, 0)
	if len(ms) != 2 || string(ms[0].Body) != "one" || ms[0].MessageID != "a" || ms[0].Properties["k"] != "v" ||
		string(ms[1].Body) != "two" || ms[1].MessageID != "b" {
		t.Fatalf("batch recorded as %+v", ms)
	}
	// A batch padded with NULs and white space, as fixed-size C buffers are.
	padded := e.do(request{method: "POST", path: "/devices/batcher/messages/events", auth: e.deviceToken(d),
		body:   "[{\"body\":\"three\",\"base64Encoded\":false}]\n\x00\x00\x00",
		header: map[string]string{"Content-Type": "application/vnd.microsoft.iothub.json"}})
	wantStatus(t, "NUL-padded batch", padded, http.StatusNoContent)
	if ms, _ := e.hub.Telemetry("batcher", "", 0, 0); len(ms) != 3 || string(ms[2].Body) != "three" {
		t.Fatalf("padded batch recorded as %+v", ms)
	}
	bad := e.do(request{method: "POST", path: "/devices/batcher/messages/events", auth: e.deviceToken(d), body: `[{"body":"%%%"}]`,
		header: map[string]string{"Content-Type": "application/vnd.microsoft.iothub.json"}})
	checkFormA(t, "bad base64 in batch", bad, http.StatusBadRequest, "ArgumentInvalid")
}

func TestDeviceRoutesAuthentication(t *testing.T) {
	e := newEnv(t)
	a, b := e.createDevice("a"), e.createDevice("b")
	cases := []struct {
		name, path, auth string
	}{
		{"no token", "/devices/a/messages/events", ""},
		{"other device's token", "/devices/a/messages/events", e.deviceToken(b)},
		{"service policy token", "/devices/a/messages/events", e.token("service")},
		{"expired", "/devices/a/messages/events", e.tokenWith(sas.ResourceURI(testHost, "a", ""), "", a.Authentication.SymmetricKey.PrimaryKey, testNow.Add(-time.Hour))},
		{"receive with other device's token", "/devices/a/messages/deviceBound", e.deviceToken(b)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.HasSuffix(tc.path, "deviceBound") {
				method = "GET"
			}
			r := e.in(t).do(request{method: method, path: tc.path, auth: tc.auth, body: "x"})
			checkFormA(t, tc.name, r, http.StatusUnauthorized, "IotHubUnauthorizedAccess")
		})
	}
	// The device policy (DeviceConnect) may act as any device.
	r := e.do(request{method: "POST", path: "/devices/a/messages/events", body: "x",
		auth: e.tokenWith(sas.ResourceURI(testHost, "a", ""), "device", mustPolicy(t, e, "device").PrimaryKey, testNow.Add(time.Hour))})
	wantStatus(t, "device policy", r, http.StatusNoContent)
	if ms, _ := e.hub.Telemetry("b", "", 0, 0); len(ms) != 0 {
		t.Fatalf("device b has messages it never sent: %v", ms)
	}
}

func mustPolicy(t *testing.T, e *env, name string) hub.Policy {
	t.Helper()
	p, ok := e.hub.Policy(name)
	if !ok {
		t.Fatalf("no policy %s", name)
	}
	return p
}

func TestDeviceSendTooLarge(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("big")
	r := e.do(request{method: "POST", path: "/devices/big/messages/events", auth: e.deviceToken(d), body: strings.Repeat("x", hub.MaxD2CSize+1)})
	checkFormA(t, "too large", r, http.StatusRequestEntityTooLarge, "MessageTooLarge")
	if ms, _ := e.hub.Telemetry("big", "", 0, 0); len(ms) != 0 {
		t.Fatalf("an oversized message was recorded")
	}
}

func TestEmulatorMessages(t *testing.T) {
	e := newEnv(t)
	d1, d2 := e.createDevice("d1"), e.createDevice("d2")
	send := func(d hub.Device, body string) {
		r := e.do(request{method: "POST", path: "/devices/" + d.DeviceID + "/messages/events", auth: e.deviceToken(d), body: body})
		wantStatus(t, "send", r, http.StatusNoContent)
	}
	send(d1, "a")
	send(d2, "b")
	send(d1, "c")
	type msg struct {
		Seq      uint64 `json:"sequenceNumber"`
		DeviceID string `json:"deviceId"`
		Body     []byte `json:"body"`
	}
	get := func(query string) []msg {
		r := e.do(request{method: "GET", path: "/emulator/messages" + query, auth: e.token(hub.OwnerPolicy), noVersion: true})
		wantStatus(t, "GET /emulator/messages"+query, r, http.StatusOK)
		return decode[[]msg](t, r)
	}
	bodies := func(ms []msg) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.DeviceID+":"+string(m.Body))
		}
		return strings.Join(s, ",")
	}
	if got := bodies(get("")); got != "d1:a,d2:b,d1:c" {
		t.Errorf("all: got %s", got)
	}
	if got := bodies(get("?deviceId=d1")); got != "d1:a,d1:c" {
		t.Errorf("d1: got %s", got)
	}
	all := get("")
	if got := bodies(get("?since=" + itoa(all[0].Seq))); got != "d2:b,d1:c" {
		t.Errorf("since first: got %s", got)
	}
	if got := bodies(get("?limit=1")); got != "d1:a" {
		t.Errorf("limit 1: got %s", got)
	}
	// Long poll: a message sent while the request waits is returned.
	done := make(chan []msg, 1)
	go func() {
		r := e.do(request{method: "GET", path: "/emulator/messages?deviceId=d2&since=" + itoa(all[2].Seq) + "&wait=10", auth: e.token(hub.OwnerPolicy), noVersion: true})
		done <- decode[[]msg](t, r)
	}()
	testutil.Eventually(t, "the long poll to wait", func() bool { return e.hub.Clock().Pending() > 0 })
	send(d2, "late")
	select {
	case ms := <-done:
		if bodies(ms) != "d2:late" {
			t.Fatalf("long poll: got %s, want d2:late", bodies(ms))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not return")
	}
	// The head is the newest sequence number: reading from it sees nothing old.
	r := e.do(request{method: "GET", path: "/emulator/messages/head", auth: e.token(hub.OwnerPolicy), noVersion: true})
	wantStatus(t, "head", r, http.StatusOK)
	if head := decode[map[string]uint64](t, r)["sequenceNumber"]; head != all[2].Seq+1 {
		t.Errorf("head: got %d, want %d (the late message)", head, all[2].Seq+1)
	}
	// Only the owner policy may read them.
	r = e.do(request{method: "GET", path: "/emulator/messages", auth: e.token("service"), noVersion: true})
	checkFormA(t, "service policy", r, http.StatusUnauthorized, "IotHubUnauthorizedAccess")
	r = e.do(request{method: "GET", path: "/emulator/messages?since=x", auth: e.token(hub.OwnerPolicy), noVersion: true})
	checkFormA(t, "bad since", r, http.StatusBadRequest, "ArgumentInvalid")
	for _, w := range []string{"NaN", "-1", "soon"} {
		r = e.do(request{method: "GET", path: "/emulator/messages?wait=" + w, auth: e.token(hub.OwnerPolicy), noVersion: true})
		checkFormA(t, "wait="+w, r, http.StatusBadRequest, "ArgumentInvalid")
	}
	// A wait too large for a duration is the longest wait, not none: the
	// long poll returns the message sent meanwhile.
	go func() {
		r := e.do(request{method: "GET", path: "/emulator/messages?deviceId=d2&since=" + itoa(all[2].Seq+1) + "&wait=1e300", auth: e.token(hub.OwnerPolicy), noVersion: true})
		done <- decode[[]msg](t, r)
	}()
	time.Sleep(100 * time.Millisecond)
	send(d2, "later")
	select {
	case ms := <-done:
		if bodies(ms) != "d2:later" {
			t.Fatalf("long poll with wait=1e300: got %s, want d2:later", bodies(ms))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll with wait=1e300 did not return")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestEmulatorRecordings(t *testing.T) {
	e := newEnv(t)
	e.createDevice("rec")
	e.connect(hub.Identity{DeviceID: "rec"}, func(c *hub.Conn, rid, name string, payload []byte) {
		c.ResolveMethod(rid, 201, []byte(`{"ok":true}`))
	})
	r := e.owner("POST", "/twins/rec/methods", map[string]any{"methodName": "reboot", "payload": map[string]int{"n": 1}, "responseTimeoutInSeconds": 5})
	wantStatus(t, "invoke", r, http.StatusOK)
	r = e.owner("PATCH", "/twins/rec", map[string]any{"properties": map[string]any{"desired": map[string]any{"fan": 2}}})
	wantStatus(t, "patch", r, http.StatusOK)

	r = e.do(request{method: "GET", path: "/emulator/methods?deviceId=rec", auth: e.token(hub.OwnerPolicy), noVersion: true})
	wantStatus(t, "methods", r, http.StatusOK)
	calls := decode[[]hub.MethodCall](t, r)
	if len(calls) != 1 || calls[0].MethodName != "reboot" || calls[0].Status != 201 || string(calls[0].Payload) != `{"n":1}` || string(calls[0].ResponsePayload) != `{"ok":true}` {
		t.Fatalf("recorded calls: %+v", calls)
	}
	r = e.do(request{method: "GET", path: "/emulator/twins/rec/history", auth: e.token(hub.OwnerPolicy), noVersion: true})
	wantStatus(t, "history", r, http.StatusOK)
	hist := decode[[]hub.TwinChange](t, r)
	if len(hist) != 1 || hist[0].Section != "desired" || string(hist[0].Patch) != `{"fan":2}` {
		t.Fatalf("twin history: %+v", hist)
	}
}

func TestEmulatorCAPEM(t *testing.T) {
	e := newEnv(t)
	r := e.do(request{method: "GET", path: "/emulator/ca.pem", noVersion: true})
	checkFormA(t, "no CA configured", r, http.StatusBadRequest, "InvalidOperation")
	srv := newServerWith(t, e.hub, []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"))
	resp, err := srv.Client().Get(srv.URL + "/emulator/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("GET /emulator/ca.pem: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func newServerWith(t *testing.T, h *hub.Hub, caPEM []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(New(Options{Hub: h, CAPEM: caPEM}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
