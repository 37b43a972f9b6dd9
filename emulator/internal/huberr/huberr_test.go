// SPDX-License-Identifier: MIT

package huberr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2024, 5, 2, 9, 20, 11, 0, time.UTC)

func TestFormABody(t *testing.T) {
	got := string(DeviceNotFound("dev9").Body("3f1c", now))
	want := `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered.","ExceptionMessage":"Tracking ID:3f1c-TimeStamp:05/02/2024 09:20:11"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestFormBBody checks the direct-method error envelope: Message holds an
// escaped JSON object with the numeric code and the timeout as a TimeSpan.
func TestFormBBody(t *testing.T) {
	var outer struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(GatewayTimeout(30*time.Second).Body("t1", now), &outer); err != nil {
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

func TestWriteHTTP(t *testing.T) {
	rec := httptest.NewRecorder()
	PreconditionFailed("stale etag").WriteHTTP(rec, "t2", now)
	if rec.Code != 412 || rec.Header().Get("iothub-errorcode") != "PreconditionFailed" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}

func TestAsAndIs(t *testing.T) {
	wrapped := fmt.Errorf("context: %w", ModuleNotFound("d", "m"))
	if !errors.Is(wrapped, ModuleNotFound("", "")) || errors.Is(wrapped, DeviceNotFound("")) {
		t.Fatal("errors.Is should match by code")
	}
	if got := As(wrapped); got.Code != 404010 {
		t.Fatalf("As: got %d, want 404010", got.Code)
	}
	if got := As(errors.New("disk on fire")); got.Status != 500 || strings.Contains(got.Message, "disk") {
		t.Fatalf("As of a foreign error: got %+v; want 500 without internal details", got)
	}
}

func TestTimeSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "00:00:00", 30 * time.Second: "00:00:30", 5 * time.Minute: "00:05:00", 90 * time.Minute: "01:30:00"} {
		if got := TimeSpan(d); got != want {
			t.Errorf("TimeSpan(%v) = %s, want %s", d, got, want)
		}
	}
}
