// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// TestConnectionTimesSurviveRestart: after a device disconnects, the
// registry keeps its connectionStateUpdatedTime and lastActivityTime, also
// across a restart (the state itself is Disconnected after a restart).
func TestConnectionTimesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() *emulator.Server {
		s, err := emulator.New(emulator.Options{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	cs, err := s.CreateDevice("d")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := device.NewFromConnectionString(cs, device.WithRootCAs(s.CAPool()))
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dc.SendMessage(ctx, &device.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Device("d"); !d.Connected || d.LastActivity.IsZero() {
		t.Fatalf("while connected: connected %v, last activity %v", d.Connected, d.LastActivity)
	}
	dc.Close()
	testutil.Eventually(t, "the hub to see the disconnect", func() bool { return !s.IsConnected("d", "") })
	before, _ := s.Device("d")
	if before.Connected || before.StateUpdated.IsZero() || before.LastActivity.IsZero() {
		t.Fatalf("after disconnect: %+v", before)
	}
	s.Close()
	s = start()
	defer s.Close()
	after, err := s.Device("d")
	if err != nil {
		t.Fatal(err)
	}
	if after.Connected || !after.LastActivity.Equal(before.LastActivity) || !after.StateUpdated.Equal(before.StateUpdated) {
		t.Fatalf("after restart: connected %v, updated %v, activity %v; want disconnected, %v, %v", after.Connected,
			after.StateUpdated, after.LastActivity, before.StateUpdated, before.LastActivity)
	}
	tw, _ := s.Twin("d", "")
	if !containsTime(string(tw), after.LastActivity) {
		t.Fatalf("twin lastActivityTime lost across the restart: %s", tw)
	}
}

func containsTime(doc string, t time.Time) bool {
	return strings.Contains(doc, `"lastActivityTime":"`+t.UTC().Format("2006-01-02T15:04:05.0000000Z")+`"`)
}
