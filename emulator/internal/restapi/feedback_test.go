// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The back end's cloud-to-device routes: the feedback queue and purge.

const feedbackPath = "/messages/serviceBound/feedback"

// serviceCall calls as the "service" policy (ServiceConnect only).
func (e *env) serviceCall(method, path string) response {
	e.t.Helper()
	return e.do(request{method: method, path: path, auth: e.token("service")})
}

// completeOnDevice receives the next message over the device HTTPS API and
// completes it.
func (e *env) completeOnDevice(tok string) {
	e.t.Helper()
	r := e.receive(tok, nil)
	wantStatus(e.t, "device receive", r, http.StatusOK)
	wantStatus(e.t, "device complete", e.do(request{method: "DELETE", path: c2dPath + "/" + etag(e.t, r), auth: tok}), http.StatusNoContent)
}

func TestServiceFeedbackQueue(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	tok := e.deviceToken(d)
	wantStatus(t, "queue m1", e.queueC2D("dev1", "one", map[string]string{"iothub-messageid": "m1", "iothub-ack": "full"}), http.StatusOK)
	wantStatus(t, "queue m2", e.queueC2D("dev1", "two", map[string]string{"iothub-messageid": "m2", "iothub-ack": "positive"}), http.StatusOK)
	if r := e.serviceCall("GET", feedbackPath); r.status != http.StatusNoContent {
		t.Fatalf("feedback before any outcome: got %d %s, want 204", r.status, r.body)
	}
	e.completeOnDevice(tok)
	e.completeOnDevice(tok)

	// Both outcomes arrive batched in one message.
	r := e.serviceCall("GET", feedbackPath)
	wantStatus(t, "receive feedback", r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != hub.FeedbackContentType {
		t.Errorf("content type: got %q, want %q", ct, hub.FeedbackContentType)
	}
	if r.header.Get("iothub-deliverycount") != "1" || r.header.Get("iothub-userid") != testHost || r.header.Get("iothub-messageid") == "" {
		t.Errorf("headers: %v", r.header)
	}
	lock := etag(t, r)
	recs := decode[[]map[string]any](t, r)
	if len(recs) != 2 || recs[0]["originalMessageId"] != "m1" || recs[1]["originalMessageId"] != "m2" ||
		recs[0]["statusCode"] != "Success" || recs[0]["description"] != "Success" || recs[0]["deviceId"] != "dev1" ||
		recs[0]["deviceGenerationId"] != d.GenerationID || recs[0]["enqueuedTimeUtc"] == nil {
		t.Fatalf("records: got %s", r.body)
	}
	// Locked: nothing else to receive.
	if r := e.serviceCall("GET", feedbackPath); r.status != http.StatusNoContent {
		t.Fatalf("receive while locked: got %d, want 204", r.status)
	}
	// Abandon puts it back; it is delivered again with a new lock.
	wantStatus(t, "abandon", e.serviceCall("POST", feedbackPath+"/"+lock+"/abandon"), http.StatusNoContent)
	r = e.serviceCall("GET", feedbackPath)
	wantStatus(t, "receive again", r, http.StatusOK)
	if r.header.Get("iothub-deliverycount") != "2" || etag(t, r) == lock {
		t.Errorf("redelivery: delivery count %s, lock %s (was %s)", r.header.Get("iothub-deliverycount"), etag(t, r), lock)
	}
	lock = etag(t, r)
	// Complete removes it; the quoted form of the token is accepted too.
	wantStatus(t, "complete", e.serviceCall("DELETE", feedbackPath+"/"+strconv.Quote(lock)), http.StatusNoContent)
	checkFormA(t, "complete twice", e.serviceCall("DELETE", feedbackPath+"/"+lock), http.StatusPreconditionFailed, "DeviceMessageLockLost")
	checkFormA(t, "abandon unknown", e.serviceCall("POST", feedbackPath+"/nope/abandon"), http.StatusPreconditionFailed, "DeviceMessageLockLost")
	if r := e.serviceCall("GET", feedbackPath); r.status != http.StatusNoContent {
		t.Fatalf("receive after complete: got %d %s, want 204", r.status, r.body)
	}
	// The emulator's own recording keeps every record.
	if fb, err := e.hub.Feedback(); err != nil || len(fb) != 2 {
		t.Errorf("recorded feedback: got %d, %v; want 2", len(fb), err)
	}
	// Only ServiceConnect may read feedback.
	checkFormA(t, "registryRead", e.do(request{method: "GET", path: feedbackPath, auth: e.token("registryRead")}), http.StatusUnauthorized, "IotHubUnauthorizedAccess")
}

func TestServiceFeedbackLockExpires(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	wantStatus(t, "queue", e.queueC2D("dev1", "x", map[string]string{"iothub-messageid": "m1", "iothub-ack": "full"}), http.StatusOK)
	e.completeOnDevice(e.deviceToken(d))
	r := e.serviceCall("GET", feedbackPath)
	wantStatus(t, "receive", r, http.StatusOK)
	lock := etag(t, r)

	e.hub.Clock().FastForward(hub.FeedbackLockTimeout + time.Second)
	checkFormA(t, "complete after the lock expired", e.serviceCall("DELETE", feedbackPath+"/"+lock), http.StatusPreconditionFailed, "DeviceMessageLockLost")
	r = e.serviceCall("GET", feedbackPath)
	wantStatus(t, "receive after the lock expired", r, http.StatusOK)
	if r.header.Get("iothub-deliverycount") != "2" {
		t.Errorf("delivery count: got %s, want 2", r.header.Get("iothub-deliverycount"))
	}
	// Past its time to live the message is gone.
	e.hub.Clock().FastForward(hub.FeedbackTTL)
	if r := e.serviceCall("GET", feedbackPath); r.status != http.StatusNoContent {
		t.Errorf("receive after the TTL: got %d %s, want 204", r.status, r.body)
	}
}

func TestServiceFeedbackDroppedWithDevice(t *testing.T) {
	e := newEnv(t)
	a, b := e.createDevice("a"), e.createDevice("b")
	for _, id := range []string{"a", "b"} {
		wantStatus(t, "queue", e.queueC2D(id, "x", map[string]string{"iothub-messageid": "to-" + id, "iothub-ack": "full"}), http.StatusOK)
	}
	for _, d := range []hub.Device{a, b} {
		r := e.do(request{method: "GET", path: "/devices/" + d.DeviceID + "/messages/deviceBound", auth: e.deviceToken(d)})
		wantStatus(t, "receive", r, http.StatusOK)
		wantStatus(t, "complete", e.do(request{method: "DELETE", path: "/devices/" + d.DeviceID + "/messages/deviceBound/" + etag(t, r), auth: e.deviceToken(d)}), http.StatusNoContent)
	}
	wantStatus(t, "delete a", e.owner("DELETE", "/devices/a", nil), http.StatusNoContent)
	r := e.serviceCall("GET", feedbackPath)
	wantStatus(t, "receive", r, http.StatusOK)
	if recs := decode[[]map[string]any](t, r); len(recs) != 1 || recs[0]["deviceId"] != "b" {
		t.Errorf("feedback after deleting a: got %s, want only b's record", r.body)
	}
}

func TestPurgeC2DQueue(t *testing.T) {
	e := newEnv(t)
	d := e.createDevice("dev1")
	e.createDevice("other")
	wantStatus(t, "queue other", e.queueC2D("other", "keep", nil), http.StatusOK)
	for i, ack := range []string{"none", "negative", "full"} {
		wantStatus(t, "queue", e.queueC2D("dev1", "x", map[string]string{"iothub-messageid": "m" + strconv.Itoa(i), "iothub-ack": ack}), http.StatusOK)
	}
	// One message is locked by a device receive: purge takes it too.
	wantStatus(t, "device receive", e.receive(e.deviceToken(d), nil), http.StatusOK)

	r := e.serviceCall("DELETE", "/devices/dev1/commands")
	wantStatus(t, "purge", r, http.StatusOK)
	if got := decode[map[string]any](t, r); got["totalMessagesPurged"] != float64(3) || got["deviceId"] != "dev1" {
		t.Errorf("purge result: got %s, want 3 messages of dev1", r.body)
	}
	if got := decode[hub.Device](t, e.owner("GET", "/devices/dev1", nil)); got.CloudToDeviceMessageCount != 0 {
		t.Errorf("device queue count after purge: got %d, want 0", got.CloudToDeviceMessageCount)
	}
	if got := decode[map[string]any](t, e.owner("GET", "/twins/dev1", nil)); got["cloudToDeviceMessageCount"] != float64(0) {
		t.Errorf("twin queue count after purge: got %v, want 0", got["cloudToDeviceMessageCount"])
	}
	if got := decode[hub.Device](t, e.owner("GET", "/devices/other", nil)); got.CloudToDeviceMessageCount != 1 {
		t.Errorf("other device's queue count: got %d, want 1", got.CloudToDeviceMessageCount)
	}
	if r := e.receive(e.deviceToken(d), nil); r.status != http.StatusNoContent {
		t.Errorf("device receive after purge: got %d, want 204", r.status)
	}
	// Messages that asked for negative or full acknowledgement report Purged.
	r = e.serviceCall("GET", feedbackPath)
	wantStatus(t, "feedback", r, http.StatusOK)
	recs := decode[[]map[string]any](t, r)
	if len(recs) != 2 || recs[0]["originalMessageId"] != "m1" || recs[1]["originalMessageId"] != "m2" || recs[0]["statusCode"] != "Purged" {
		t.Errorf("purge feedback: got %s, want Purged for m1 and m2", r.body)
	}
	// An empty queue purges nothing; an unknown device is 404.
	if got := decode[map[string]any](t, e.serviceCall("DELETE", "/devices/dev1/commands")); got["totalMessagesPurged"] != float64(0) {
		t.Errorf("second purge: got %v, want 0", got)
	}
	checkFormA(t, "unknown device", e.serviceCall("DELETE", "/devices/ghost/commands"), http.StatusNotFound, "DeviceNotFound")
}
