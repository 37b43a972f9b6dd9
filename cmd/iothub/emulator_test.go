// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator"
)

// TestAgainstEmulator runs a session of commands against a real emulator,
// trusting it through its CA file as a user would.
func TestAgainstEmulator(t *testing.T) {
	srv := emulator.RunT(t)
	if srv.CAFile() == "" {
		t.Fatal("emulator has no CA file")
	}
	env := map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}

	// The device connection string must name the emulator's MQTT
	// endpoint, which is not the REST port of the service string.
	mqttHost := "localhost:" + srv.MQTTAddr()[strings.LastIndex(srv.MQTTAddr(), ":")+1:]
	res := runCLI(t, env, "", "device", "create", "dev1", "--device-host", mqttHost)
	if res.code != exitOK {
		t.Fatalf("device create: exit %d, stderr %q", res.code, res.stderr)
	}
	var created struct {
		ConnectionString string `json:"connectionString"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil {
		t.Fatal(err)
	}
	want, err := srv.DeviceConnectionString("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if created.ConnectionString != want {
		t.Errorf("connection string %q, want the emulator's %q", created.ConnectionString, want)
	}

	res = runCLI(t, env, "", "twin", "update", "dev1", "--patch", `{"tags":{"site":"B7"}}`)
	if res.code != exitOK || !strings.Contains(res.stdout, `"site": "B7"`) {
		t.Errorf("twin update: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "query", "SELECT * FROM devices WHERE tags.site = 'B7'")
	var items []map[string]any
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &items) != nil || len(items) != 1 || items[0]["deviceId"] != "dev1" {
		t.Errorf("query: exit %d, stdout %q, stderr %q; want [dev1]", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "method", "invoke", "dev1", "--name", "reboot", "--timeout", "5s")
	if res.code != exitError || !strings.Contains(res.stderr, "404103") {
		t.Errorf("method invoke offline: exit %d, stderr %q; want exit 1 with 404103", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "device", "delete", "dev1"); res.code != exitOK {
		t.Errorf("device delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "device", "show", "dev1"); res.code != exitError || !strings.Contains(res.stderr, "DeviceNotFound") {
		t.Errorf("device show after delete: exit %d, stderr %q", res.code, res.stderr)
	}
}
