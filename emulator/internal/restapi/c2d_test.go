// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Cloud-to-device over HTTPS: the emulator's control route that queues a
// message, and the device-facing receive / complete / reject / abandon
// routes (iothub-protocol.md §7).

// c2dPath is the device-facing queue of dev1.
const c2dPath = "/devices/dev1/messages/deviceBound"

// queueC2D posts a message to the control route as iothubowner.
func (e *env) queueC2D(deviceID string, body string, headers map[string]string) response {
	e.t.Helper()
	return e.do(request{method: "POST", path: "/emulator/devices/" + deviceID + "/messages/devicebound",
		auth: e.token(hub.OwnerPolicy), body: body, header: headers, noVersion: true})
}

// receive is the device's GET of its queue.
func (e *env) receive(tok string, headers map[string]string) response {
	e.t.Helper()
	return e.do(request{method: "GET", path: c2dPath, auth: tok, header: headers})
}

// etag returns the lock token of a receive, without the quotes.
func etag(t *testing.T, r response) string {
	t.Helper()
	v := r.header.Get("ETag")
	tok, err := strconv.Unquote(v)
	if err != nil || tok == "" {
		t.Fatalf("ETag %q is not a quoted lock token", v)
	}
	return tok
}

func TestC2DControlQueuesMessage(t *testing.T) {
	e := newEnv(t)
	e.createDevice("dev1")
	r := e.queueC2D("dev1", "hello", map[string]string{
		"iothub-messageid": "m1", "iothub-correlationid": "c1", "iothub-userid": "u1", "iothub-ack": "full",
		"iothub-contenttype": "text/plain", "iothub-contentencoding": "utf-8", "iothub-ttl": "120",
		"iothub-app-color": "red blue", "iothub-app-empty": "",
	})
	wantStatus(t, "queue", r, http.StatusOK)
	got := decode[hub.C2DMessage](t, r)
	want := hub.C2DMessage{
		Seq: got.Seq, DeviceID: "dev1", MessageID: "m1", CorrelationID: "c1", UserID: "u1", To: "/devices/dev1/messages/deviceBound",
		Ack: "full", ContentType: "text/plain", ContentEncoding: "utf-8", EnqueuedTime: testNow, ExpiryTime: testNow.Add(120 * time.Second),
		Properties: map[string]string{"color": "red blue", "empty": ""}, Body: []byte("hello"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queued message (-want +got):\n%s", diff)
	}
	pending := decode[[]hub.C2DMessage](t, e.do(request{method: "GET", path: "/emulator/devices/dev1/messages/devicebound", auth: e.token(hub.OwnerPolicy), noVersion: true}))
	if diff := cmp.Diff([]hub.C2DMessage{want}, pending); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	if r := e.do(request{method: "GET", path: "/emulator/devices/other/messages/devicebound", auth: e.token(hub.OwnerPolicy), noVersion: true}); string(r.body) != "[]" {
		t.Errorf("pending of a device without messages: got %s, want []", r.body)
	}
}

func TestC2DControlRefusals(t *testing.T) {
	e := newEnv(t)
	e.createDevice("dev1")
	e.createDevice("full")
	for range hub.MaxC2DQueue {
		wantStatus(t, "fill", e.queueC2D("full", "x", nil), http.StatusOK)
	}
	tests := []struct {
		name    string
		device  string
		body    string
		headers map[string]string
		status  int
		code    string
	}{
		{"queue of 50", "full", "x", nil, 403, "DeviceMaximumQueueDepthExceeded"},
		{"over 64 KB", "dev1", strings.Repeat("x", hub.MaxC2DSize+1), nil, 413, "MessageTooLarge"},
		{"unknown device", "nobody", "x", nil, 404, "DeviceNotFound"},
		{"bad ttl", "dev1", "x", map[string]string{"iothub-ttl": "soon"}, 400, "ArgumentInvalid"},
		{"zero ttl", "dev1", "x", map[string]string{"iothub-ttl": "0"}, 400, "ArgumentInvalid"},
		{"ttl over 48 hours", "dev1", "x", map[string]string{"iothub-ttl": strconv.Itoa(48*3600 + 1)}, 400, "ArgumentInvalid"},
		{"ttl that wraps to 3 s as a duration", "dev1", "x", map[string]string{"iothub-ttl": "18446744077"}, 400, "ArgumentInvalid"},
		{"ttl that wraps to a negative duration", "dev1", "x", map[string]string{"iothub-ttl": "9223372037"}, 400, "ArgumentInvalid"},
		{"bad ack", "dev1", "x", map[string]string{"iothub-ack": "maybe"}, 400, "ArgumentInvalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			checkFormA(t, tt.name, e.queueC2D(tt.device, tt.body, tt.headers), tt.status, tt.code)
		})
	}
	t.Run("owner policy only", func(t *testing.T) {
		e := e.in(t)
		r := e.do(request{method: "POST", path: "/emulator/devices/dev1/messages/devicebound", auth: e.token("service"), body: "x", noVersion: true})
		wantStatus(t, "service policy", r, http.StatusUnauthorized)
	})
}

func TestC2DReceiveAndComplete(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	tok := e.deviceToken(d)
	if r := e.receive(tok, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("empty queue: got %d %q, want 204 and no body", r.status, r.body)
	}
	queued := decode[hub.C2DMessage](t, e.queueC2D("dev1", `{"on":true}`, map[string]string{
		"iothub-messageid": "m1", "iothub-correlationid": "c1", "iothub-userid": "u1", "iothub-ack": "full",
		"iothub-contenttype": "application/json", "iothub-contentencoding": "utf-8", "iothub-app-color": "red",
	}))

	r := e.receive(tok, map[string]string{"iothub-messagelocktimeout": "30"})
	wantStatus(t, "receive", r, http.StatusOK)
	if string(r.body) != `{"on":true}` {
		t.Errorf("body: got %q", r.body)
	}
	lock := etag(t, r)
	wantHeaders := map[string]string{
		"iothub-messageid":      "m1",
		"iothub-correlationid":  "c1",
		"iothub-userid":         "u1",
		"iothub-ack":            "full",
		"iothub-sequencenumber": strconv.FormatUint(queued.Seq, 10),
		"iothub-to":             "/devices/dev1/messages/deviceBound",
		"iothub-deliverycount":  "1",
		"iothub-enqueuedtime":   testNow.Format(time.RFC1123),
		"iothub-expiry":         testNow.Add(hub.DefaultC2DTTL).Format(time.RFC1123),
		"ContentType":           "application/json",
		"ContentEncoding":       "utf-8",
		"iothub-app-color":      "red",
	}
	gotHeaders := map[string]string{}
	for k := range wantHeaders {
		gotHeaders[k] = r.header.Get(k)
	}
	if diff := cmp.Diff(wantHeaders, gotHeaders); diff != "" {
		t.Errorf("receive headers (-want +got):\n%s", diff)
	}

	if r := e.receive(tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("receive while locked: got %d, want 204", r.status)
	}
	// The SDKs strip the ETag's quotes; a client that sends them quoted
	// (percent-encoded) is served too.
	wantStatus(t, "complete", e.do(request{method: "DELETE", path: c2dPath + "/%22" + lock + "%22", auth: tok}), http.StatusNoContent)
	checkFormA(t, "complete again", e.do(request{method: "DELETE", path: c2dPath + "/" + lock, auth: tok}), 412, "DeviceMessageLockLost")
	fb := decode[[]hub.Feedback](t, e.do(request{method: "GET", path: "/emulator/feedback", auth: e.token(hub.OwnerPolicy), noVersion: true}))
	if len(fb) != 1 || fb[0].StatusCode != hub.FeedbackSuccess || fb[0].OriginalMessageID != "m1" {
		t.Errorf("feedback: got %+v, want Success for m1", fb)
	}
}

func TestC2DRejectAndAbandon(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	tok := e.deviceToken(d)

	e.queueC2D("dev1", "a", map[string]string{"iothub-messageid": "a", "iothub-ack": "negative"})
	lock := etag(t, e.receive(tok, nil))
	wantStatus(t, "abandon", e.do(request{method: "POST", path: c2dPath + "/" + lock + "/abandon", auth: tok}), http.StatusNoContent)
	checkFormA(t, "abandon twice", e.do(request{method: "POST", path: c2dPath + "/" + lock + "/abandon", auth: tok}), 412, "DeviceMessageLockLost")

	r := e.receive(tok, nil)
	if got := r.header.Get("iothub-deliverycount"); got != "2" {
		t.Errorf("delivery count after abandon: got %q, want 2", got)
	}
	lock = etag(t, r)
	wantStatus(t, "reject", e.do(request{method: "DELETE", path: c2dPath + "/" + lock + "?reject", auth: tok}), http.StatusNoContent)
	if r := e.receive(tok, nil); r.status != http.StatusNoContent {
		t.Errorf("receive after reject: got %d, want 204", r.status)
	}
	fb := decode[[]hub.Feedback](t, e.do(request{method: "GET", path: "/emulator/feedback", auth: e.token(hub.OwnerPolicy), noVersion: true}))
	if len(fb) != 1 || fb[0].StatusCode != hub.FeedbackRejected || fb[0].Description != "Message rejected" {
		t.Errorf("feedback: got %+v, want Rejected", fb)
	}
}

func TestC2DLockExpiry(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	tok := e.deviceToken(d)
	e.queueC2D("dev1", "a", nil)
	r := e.receive(tok, map[string]string{"iothub-messagelocktimeout": "10"})
	for _, k := range []string{"iothub-messageid", "iothub-correlationid", "iothub-userid", "ContentType", "ContentEncoding"} {
		if v, ok := r.header[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("message without %s: got header %q, want none", k, v)
		}
	}
	lock := etag(t, r)

	e.hub.Clock().SetFunc(func() time.Time { return testNow.Add(10 * time.Second) })
	t.Cleanup(func() { e.hub.Clock().SetFunc(func() time.Time { return testNow }) })
	checkFormA(t, "complete after lock expiry", e.do(request{method: "DELETE", path: c2dPath + "/" + lock, auth: tok}), 412, "DeviceMessageLockLost")
	checkFormA(t, "abandon after lock expiry", e.do(request{method: "POST", path: c2dPath + "/" + lock + "/abandon", auth: tok}), 412, "DeviceMessageLockLost")
	r = e.receive(tok, nil)
	if r.header.Get("iothub-deliverycount") != "2" || etag(t, r) == lock {
		t.Errorf("after lock expiry: got delivery count %q and lock %q; want 2 and a new lock", r.header.Get("iothub-deliverycount"), etag(t, r))
	}
}

func TestC2DReceiveRefusals(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	other := e.createDevice("dev2")
	tok := e.deviceToken(d)
	tests := []struct {
		name   string
		auth   string
		header map[string]string
		status int
		code   string
	}{
		{"lock timeout not a number", tok, map[string]string{"iothub-messagelocktimeout": "soon"}, 400, "ArgumentInvalid"},
		{"lock timeout zero", tok, map[string]string{"iothub-messagelocktimeout": "0"}, 400, "ArgumentInvalid"},
		{"lock timeout over 300 s", tok, map[string]string{"iothub-messagelocktimeout": "301"}, 400, "ArgumentInvalid"},
		{"lock timeout that wraps to 9 s", tok, map[string]string{"iothub-messagelocktimeout": "18446744083"}, 400, "ArgumentInvalid"},
		{"another device's token", e.deviceToken(other), nil, 401, "IotHubUnauthorizedAccess"},
		{"no token", "", nil, 401, "IotHubUnauthorizedAccess"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.in(t)
			r := e.receive(tt.auth, tt.header)
			if tt.status == 401 {
				wantStatus(t, tt.name, r, 401)
				return
			}
			checkFormA(t, tt.name, r, tt.status, tt.code)
		})
	}
	t.Run("complete with another device's token", func(t *testing.T) {
		e := e.in(t)
		e.queueC2D("dev1", "a", nil)
		lock := etag(t, e.receive(tok, nil))
		wantStatus(t, "complete as dev2", e.do(request{method: "DELETE", path: c2dPath + "/" + lock, auth: e.deviceToken(other)}), 401)
		// dev2's own queue does not know the lock either.
		checkFormA(t, "dev2 completing dev1's lock", e.do(request{method: "DELETE", path: "/devices/dev2/messages/deviceBound/" + lock, auth: e.deviceToken(other)}), 412, "DeviceMessageLockLost")
		wantStatus(t, "complete as dev1", e.do(request{method: "DELETE", path: c2dPath + "/" + lock, auth: tok}), http.StatusNoContent)
	})
}

// TestC2DLowerCasePaths: the Node SDK's Http transport receives, completes
// and abandons on .../messages/devicebound, which the hub accepts as it
// accepts deviceBound.
func TestC2DLowerCasePaths(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	tok := e.deviceToken(d)
	const lower = "/devices/dev1/messages/devicebound"
	e.queueC2D("dev1", "a", map[string]string{"iothub-messageid": "a", "iothub-ack": "full"})
	r := e.do(request{method: "GET", path: lower, auth: tok})
	wantStatus(t, "receive", r, http.StatusOK)
	wantStatus(t, "abandon", e.do(request{method: "POST", path: lower + "/" + etag(t, r) + "/abandon", auth: tok}), http.StatusNoContent)
	r = e.do(request{method: "GET", path: lower, auth: tok})
	wantStatus(t, "receive again", r, http.StatusOK)
	wantStatus(t, "complete", e.do(request{method: "DELETE", path: lower + "/" + etag(t, r), auth: tok}), http.StatusNoContent)
	if r := e.do(request{method: "GET", path: lower, auth: tok}); r.status != http.StatusNoContent {
		t.Errorf("receive after complete: got %d, want 204", r.status)
	}
}
