// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator"
)

// TestSimulate runs the fleet simulator against an emulator: it registers
// the devices, sends telemetry and reported properties at the given
// rates, prints progress and a summary, and deletes the devices.
func TestSimulate(t *testing.T) {
	srv := emulator.RunT(t)
	env := map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}
	res := runCLI(t, env, "", "simulate", "--devices", "5", "--prefix", "cli", "--create", "--delete",
		"--mqtt-host", srv.MQTTAddr(), "--msgs-per-sec", "50", "--reports-per-sec", "10", "--duration", "2s", "--progress", "500ms")
	if res.code != exitOK {
		t.Fatalf("simulate: exit %d, stderr %q", res.code, res.stderr)
	}
	var sum summary
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("summary %q: %v", res.stdout, err)
	}
	// 50/s and 10/s for 2 s, paced in 10 ms steps, acknowledged before the end.
	if sum.Devices != 5 || sum.Connected != 5 || sum.TelemetryAcked < 80 || sum.Reported < 15 || sum.Errors != 0 || sum.TelemetryMs.P50 <= 0 {
		t.Fatalf("got summary %+v, want 5 connected, about 100 messages and 20 reports acknowledged, no errors", sum)
	}
	if !strings.Contains(res.stderr, "connected 5 | telemetry") {
		t.Errorf("no progress line on stderr: %q", res.stderr)
	}
	msgs, err := srv.Messages("")
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(msgs)) != sum.TelemetryAcked {
		t.Errorf("the hub recorded %d messages, the summary says %d acknowledged", len(msgs), sum.TelemetryAcked)
	}
	if _, err := srv.Device("cli-000000"); err == nil {
		t.Error("cli-000000 still exists after --delete")
	}
}

// TestSimulateUsage: bad flags are usage errors.
func TestSimulateUsage(t *testing.T) {
	env := map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=h;SharedAccessKeyName=n;SharedAccessKey=AAAA"}
	for _, args := range [][]string{
		{"simulate", "--devices", "0"},
		{"simulate", "--msgs-per-sec", "fast"},
		{"simulate", "--source-addrs", "127.0.0.9-127.0.0.2"},
		{"simulate", "--auth", "x509"},
		{"simulate", "extra"},
	} {
		if res := runCLI(t, env, "", args...); res.code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, res.code, exitUsage, res.stderr)
		}
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("127.0.0.2-127.0.0.4, ::1")
	if err != nil || strings.Join(got, ",") != "127.0.0.2,127.0.0.3,127.0.0.4,::1" {
		t.Fatalf("got %v, %v", got, err)
	}
}
