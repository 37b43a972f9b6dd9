// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestConfigurationCommandsAgainstEmulator creates, reads, changes and
// deletes a configuration with the commands, and checks what it did to a
// device twin.
func TestConfigurationCommandsAgainstEmulator(t *testing.T) {
	srv := emulator.RunT(t)
	env := map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	decode := func(what string, res result, v any) {
		t.Helper()
		if res.code != exitOK {
			t.Fatalf("%s: exit %d, stderr %q", what, res.code, res.stderr)
		}
		if err := json.Unmarshal([]byte(res.stdout), v); err != nil {
			t.Fatalf("%s: stdout %q: %v", what, res.stdout, err)
		}
	}
	type config struct {
		ID, ETag, TargetCondition string
		Priority                  int
		Labels                    map[string]string
		SystemMetrics, Metrics    struct{ Results map[string]int }
	}

	// Content from a file in the shape az takes it ({"content": ...}).
	dir := t.TempDir()
	contentFile := filepath.Join(dir, "content.json")
	if err := os.WriteFile(contentFile, []byte(`{"content":{"deviceContent":{"properties.desired.fw":{"version":"2.0"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var c config
	decode("create", runCLI(t, env, "", "configuration", "create", "fw", "--content", "@"+contentFile,
		"--target-condition", "deviceId='dev1'", "--priority", "5", "--labels", `{"v":"2"}`,
		"--metrics", `{"queries":{"current":"SELECT deviceId FROM devices WHERE properties.reported.fw = '2.0'"}}`), &c)
	if c.ID != "fw" || c.Priority != 5 || c.Labels["v"] != "2" || c.SystemMetrics.Results["targetedCount"] != 1 {
		t.Fatalf("create: got %+v", c)
	}
	tw, err := srv.Twin("dev1", "")
	if err != nil || !strings.Contains(string(tw), `"fw":{"version":"2.0"}`) {
		t.Fatalf("twin after create: %s, %v", tw, err)
	}
	res := runCLI(t, env, "", "configuration", "create", "fw", "--content", "{}")
	if res.code != exitError || !strings.Contains(res.stderr, "DeviceAlreadyExists") {
		t.Errorf("create again: exit %d, stderr %q", res.code, res.stderr)
	}

	decode("update", runCLI(t, env, "", "configuration", "update", "fw", "--priority", "9"), &c)
	if c.Priority != 9 || c.TargetCondition != "deviceId='dev1'" || c.Labels["v"] != "2" {
		t.Fatalf("update keeps what it does not change: got %+v", c)
	}
	res = runCLI(t, env, "", "configuration", "update", "fw", "--priority", "3", "--etag", "MQ==")
	if res.code != exitError || !strings.Contains(res.stderr, "PreconditionFailed") {
		t.Errorf("update with a stale etag: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "configuration", "update", "fw"); res.code != exitUsage {
		t.Errorf("update without changes: exit %d, want %d", res.code, exitUsage)
	}
	decode("show", runCLI(t, env, "", "configuration", "show", "fw"), &c)
	if c.ETag != "Mg==" || c.Metrics.Results["current"] != 0 {
		t.Errorf("show: got %+v", c)
	}
	var list []config
	decode("list", runCLI(t, env, "", "configuration", "list", "--top", "10"), &list)
	if len(list) != 1 || list[0].ID != "fw" {
		t.Errorf("list: got %+v", list)
	}
	var test struct {
		TargetConditionError    string
		CustomMetricQueryErrors map[string]string
	}
	decode("test-queries", runCLI(t, env, "", "configuration", "test-queries", "--target-condition", "tags.x = ",
		"--metrics", `{"bad":"SELECT FROM"}`), &test)
	if test.TargetConditionError == "" || test.CustomMetricQueryErrors["bad"] == "" {
		t.Errorf("test-queries: got %+v", test)
	}

	if res = runCLI(t, env, "", "configuration", "delete", "fw"); res.code != exitOK {
		t.Fatalf("delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if tw, _ = srv.Twin("dev1", ""); strings.Contains(string(tw), `"fw"`) {
		t.Errorf("twin after delete: %s", tw)
	}
	if res = runCLI(t, env, "", "configuration", "show", "fw"); res.code != exitError || !strings.Contains(res.stderr, "404") {
		t.Errorf("show after delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "configuration", "create", "Bad", "--content", "{}"); res.code != exitError || !strings.Contains(res.stderr, "ArgumentInvalid") {
		t.Errorf("bad id: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "configuration", "create", "x", "--content", "{"); res.code != exitUsage {
		t.Errorf("bad --content: exit %d, want %d", res.code, exitUsage)
	}

	// An edge device's modules.
	if res = runCLI(t, env, "", "device", "create", "edge1", "--edge"); res.code != exitOK {
		t.Fatalf("device create --edge: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "configuration", "apply", "edge1", "--content",
		`{"modulesContent":{"$edgeAgent":{"properties.desired":{"modules":{"m":{}}}}}}`); res.code != exitOK {
		t.Fatalf("apply: exit %d, stderr %q", res.code, res.stderr)
	}
	if tw, err = srv.Twin("edge1", "$edgeAgent"); err != nil || !strings.Contains(string(tw), `"modules":{"m":{}}`) {
		t.Errorf("$edgeAgent twin: %s, %v", tw, err)
	}
	if res = runCLI(t, env, "", "configuration", "apply", "dev1", "--content", `{"modulesContent":{"$edgeAgent":{}}}`); res.code != exitError || !strings.Contains(res.stderr, "ArgumentInvalid") {
		t.Errorf("apply to a device that is not an edge device: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestDigitalTwinCommandsAgainstEmulator shows, updates and commands the
// digital twin of a connected Plug and Play device.
func TestDigitalTwinCommandsAgainstEmulator(t *testing.T) {
	srv := emulator.RunT(t)
	env := map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}
	cs, err := srv.CreateDevice("thermo")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithModelID("dtmi:com:example:Thermostat;1"))
	if err != nil {
		t.Fatal(err)
	}
	dev.HandleMethod("thermostat1*getMaxMinReport", func(ctx context.Context, req *device.MethodRequest) (int, any) {
		return 200, map[string]any{"since": json.RawMessage(req.Payload)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := dev.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })

	res := runCLI(t, env, "", "digitaltwin", "show", "thermo")
	if res.code != exitOK || !strings.Contains(res.stdout, `"$model": "dtmi:com:example:Thermostat;1"`) {
		t.Fatalf("show: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "digitaltwin", "update", "thermo", "--patch", `[{"op":"add","path":"/thermostat1","value":{"targetTemperature":21,"$metadata":{}}}]`)
	if res.code != exitOK || !strings.Contains(res.stdout, `"etag": "AAAAAAAAAAI="`) {
		t.Fatalf("update: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "digitaltwin", "update", "thermo", "--etag", "AAAAAAAAAAE=", "--patch", `[{"op":"add","path":"/x","value":1}]`)
	if res.code != exitError || !strings.Contains(res.stderr, "PreconditionFailed") {
		t.Errorf("update with a stale etag: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "digitaltwin", "update", "thermo", "--patch", `{"op":"add"}`); res.code != exitUsage {
		t.Errorf("update with a patch that is not an array: exit %d", res.code)
	}
	var out struct {
		Status  int
		Payload map[string]any
	}
	res = runCLI(t, env, "", "digitaltwin", "invoke", "thermo", "--component", "thermostat1", "--command", "getMaxMinReport",
		"--payload", `"2024-05-02"`, "--timeout", "10s")
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &out) != nil || out.Status != 200 || out.Payload["since"] != "2024-05-02" {
		t.Fatalf("invoke: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res = runCLI(t, env, "", "digitaltwin", "invoke", "thermo"); res.code != exitUsage {
		t.Errorf("invoke without --command: exit %d", res.code)
	}
	if res = runCLI(t, env, "", "digitaltwin", "show", "ghost"); res.code != exitError || !strings.Contains(res.stderr, "DeviceNotFound") {
		t.Errorf("show of an unknown device: exit %d, stderr %q", res.code, res.stderr)
	}
}
