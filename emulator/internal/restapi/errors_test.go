// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

var errNow = time.Date(2024, 5, 2, 9, 20, 11, 0, time.UTC)

func TestErrorBodyFormA(t *testing.T) {
	got := string(renderError(huberr.DeviceNotFound("dev9"), "3f1c", errNow))
	want := `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered.","ExceptionMessage":"Tracking ID:3f1c-TimeStamp:05/02/2024 09:20:11"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestErrorBodyFormB checks the direct-method error envelope: Message holds
// an escaped JSON object with the numeric code and the timeout as a TimeSpan.
func TestErrorBodyFormB(t *testing.T) {
	var outer struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(renderError(huberr.GatewayTimeout(30*time.Second), "t1", errNow), &outer); err != nil {
		t.Fatal(err)
	}
	var inner struct {
		ErrorCode    int               `json:"errorCode"`
		TrackingID   string            `json:"trackingId"`
		Message      string            `json:"message"`
		Info         map[string]string `json:"info"`
		TimestampUTC string            `json:"timestampUtc"`
	}
	if err := json.Unmarshal([]byte(outer.Message), &inner); err != nil {
		t.Fatalf("Message is not JSON: %q", outer.Message)
	}
	if inner.ErrorCode != 504101 || inner.TrackingID != "t1" || inner.Info["timeout"] != "00:00:30" ||
		inner.TimestampUTC != "2024-05-02T09:20:11.0000000Z" || outer.ExceptionMessage != "" {
		t.Fatalf("form B body: %+v / %+v", outer, inner)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	writeError(rec, huberr.PreconditionFailed("stale etag"), "t2", errNow)
	if rec.Code != 412 || rec.Header().Get("iothub-errorcode") != "PreconditionFailed" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}
