// SPDX-License-Identifier: MIT

package huberr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2024, 5, 2, 9, 20, 11, 0, time.UTC)

// TestDetail checks the detail object every adapter renders: form B errors
// always carry "info", others only when they have one.
func TestDetail(t *testing.T) {
	d := GatewayTimeout(30*time.Second).Detail("t1", now)
	if d.ErrorCode != 504101 || d.TrackingID != "t1" || d.Info["timeout"] != "00:00:30" ||
		d.TimestampUTC != "2024-05-02T09:20:11.0000000Z" {
		t.Fatalf("got %+v", d)
	}
	if d := ArgumentInvalid("bad").Detail("t2", now); d.Info != nil || d.ErrorCode != 400004 || d.Message != "bad" {
		t.Fatalf("got %+v", d)
	}
	b, err := json.Marshal(ArgumentInvalid("bad").Detail("t2", now))
	if err != nil || strings.Contains(string(b), "info") {
		t.Fatalf("got %s, %v; want no info member", b, err)
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
