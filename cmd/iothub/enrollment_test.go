// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/provisioning"
)

// TestEnrollmentCommands creates, shows, lists and deletes enrollments and
// groups on the emulator's provisioning service, then registers a device
// of a created enrollment to show the keys printed are the ones in force.
func TestEnrollmentCommands(t *testing.T) {
	srv := emulator.RunT(t)
	env := map[string]string{"IOTHUB_DPS_CONNECTION_STRING": srv.ProvisioningConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}

	res := runCLI(t, env, `{"interval":5}`, "enrollment", "create", "sensor-1", "--device-id", "dev-sensor-1", "--edge", "--tags", `{"site":"B7"}`, "--desired", "-")
	if res.code != exitOK {
		t.Fatalf("create: exit %d, stderr %q", res.code, res.stderr)
	}
	var e struct {
		RegistrationID string `json:"registrationId"`
		DeviceID       string `json:"deviceId"`
		ETag           string `json:"etag"`
		Capabilities   struct {
			IotEdge bool `json:"iotEdge"`
		} `json:"capabilities"`
		InitialTwin struct {
			Tags       map[string]any `json:"tags"`
			Properties struct {
				Desired map[string]any `json:"desired"`
			} `json:"properties"`
		} `json:"initialTwin"`
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &e); err != nil || e.RegistrationID != "sensor-1" || e.DeviceID != "dev-sensor-1" ||
		!e.Capabilities.IotEdge || e.InitialTwin.Tags["site"] != "B7" || e.InitialTwin.Properties.Desired["interval"] != float64(5) || e.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("create printed %s (%v)", res.stdout, err)
	}
	c, _ := provisioning.NewFromSymmetricKey(srv.ProvisioningHost(), srv.IDScope(), "sensor-1", e.Attestation.SymmetricKey.PrimaryKey,
		provisioning.WithTransport(provisioning.HTTPS), provisioning.WithRootCAs(srv.CAPool()))
	if r, err := c.Register(context.Background()); err != nil || r.RegistrationState.DeviceID != "dev-sensor-1" {
		t.Fatalf("registering with the printed key: %+v, %v", r, err)
	}

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, srv.CAPEM(), 0o600) // any CA certificate does for a group
	if res = runCLI(t, env, "", "enrollment", "create", "fleet", "--group", "--certificate", caFile); res.code != exitOK ||
		!strings.Contains(res.stdout, `"signingCertificates"`) || strings.Contains(res.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("create group: exit %d, stdout %s, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res = runCLI(t, env, "", "enrollment", "show", "FLEET", "--group"); res.code != exitOK || !strings.Contains(res.stdout, `"enrollmentGroupId": "fleet"`) {
		t.Fatalf("show group: exit %d, stdout %s, stderr %q", res.code, res.stdout, res.stderr)
	}
	for _, id := range []string{"b-2", "c-3"} {
		if res = runCLI(t, env, "", "enrollment", "create", id); res.code != exitOK {
			t.Fatalf("create %s: %q", id, res.stderr)
		}
	}
	res = runCLI(t, env, "", "enrollment", "list")
	var list []map[string]any
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &list) != nil || len(list) != 3 {
		t.Fatalf("list: exit %d, stdout %s, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res = runCLI(t, env, "", "enrollment", "delete", "sensor-1", "--etag", "stale"); res.code != exitError || !strings.Contains(res.stderr, "412") {
		t.Errorf("delete with a stale etag: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "enrollment", "delete", "sensor-1", "--etag", e.ETag); res.code != exitOK {
		t.Errorf("delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "enrollment", "show", "sensor-1"); res.code != exitError || !strings.Contains(res.stderr, "404201") {
		t.Errorf("show after delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "enrollment", "create", "bad id!"); res.code != exitError || !strings.Contains(res.stderr, "400004") {
		t.Errorf("invalid id: exit %d, stderr %q", res.code, res.stderr)
	}
	// Usage errors.
	for _, args := range [][]string{
		{"enrollment"},
		{"enrollment", "frobnicate", "x"},
		{"enrollment", "show"},
		{"enrollment", "list", "extra"},
		{"enrollment", "create", "x", "--status", "paused"},
		{"enrollment", "create", "x", "--primary-key", "a2V5", "--certificate", caFile},
		{"enrollment", "create", "x", "--group", "--device-id", "d"},
	} {
		if res = runCLI(t, env, "", args...); res.code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, res.code, exitUsage, res.stderr)
		}
	}
	if res = runCLI(t, map[string]string{}, "", "enrollment", "list"); res.code != exitUsage || !strings.Contains(res.stderr, "IOTHUB_DPS_CONNECTION_STRING") {
		t.Errorf("no connection string: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "help"); !strings.Contains(res.stdout, "enrollment ") {
		t.Errorf("help does not list the enrollment group:\n%s", res.stdout)
	}
	if res = runCLI(t, env, "", "help", "enrollment", "create"); !strings.Contains(res.stdout, "iothub enrollment create <id>") || !strings.Contains(res.stdout, "--dps-connection-string") {
		t.Errorf("help enrollment create:\n%s", res.stdout)
	}
}
