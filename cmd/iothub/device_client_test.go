// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator"
)

// mqttHost is the host:port a device uses to reach srv over MQTT/TLS.
func mqttHost(t *testing.T, srv *emulator.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	return "localhost:" + port
}

// background runs a command line until it exits, handing its stdout over
// line by line.
type background struct {
	lines chan string
	done  chan result
	stop  context.CancelFunc
}

func runBackground(t *testing.T, env map[string]string, args ...string) *background {
	t.Helper()
	pr, pw := io.Pipe()
	var errOut strings.Builder
	c := &cli{getenv: func(k string) string { return env[k] }, stdin: strings.NewReader(""), stdout: pw, stderr: &errOut}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b := &background{lines: make(chan string, 100), done: make(chan result, 1), stop: cancel}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
	}()
	go func() {
		code := c.run(ctx, args)
		pw.Close()
		b.done <- result{code: code, stderr: errOut.String()}
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
	})
	return b
}

// next returns the next stdout line as a JSON object.
func (b *background) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case l, ok := <-b.lines:
		if !ok {
			r := <-b.done
			t.Fatalf("command ended (exit %d, stderr %q) before the next line", r.code, r.stderr)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no line within 20s")
	}
	return nil
}

func (b *background) wait(t *testing.T) result {
	t.Helper()
	select {
	case r := <-b.done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("command did not end within 20s")
	}
	return result{}
}

// TestDeviceSideAgainstEmulator acts as a device with the CLI: it sends
// telemetry, reports properties and listens while the service side calls
// a method, patches the desired properties and sends a C2D message.
func TestDeviceSideAgainstEmulator(t *testing.T) {
	srv, env := emulatorEnv(t)
	host := mqttHost(t, srv)
	if res := runCLI(t, env, "", "device", "create", "dev1"); res.code != exitOK {
		t.Fatalf("device create: exit %d, stderr %q", res.code, res.stderr)
	}

	// send: the key comes from the registry; the host from --device-host.
	res := runCLI(t, env, "", "device", "send", "dev1", "--device-host", host, "--body", `{"t":1}`,
		"--property", "alert=high", "--content-type", "application/json", "--count", "2")
	if res.code != exitOK {
		t.Fatalf("device send: exit %d, stderr %q", res.code, res.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	var ids []string
	for dec.More() {
		var s sent
		if err := dec.Decode(&s); err != nil || s.DeviceID != "dev1" || !uuidV4.MatchString(s.MessageID) {
			t.Fatalf("device send printed %q (%v), want a line per message with a UUID", res.stdout, err)
		}
		ids = append(ids, s.MessageID)
	}
	msgs, err := srv.WaitMessages("dev1", 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || msgs[0].MessageID != ids[0] || msgs[1].MessageID != ids[1] || string(msgs[0].Body) != `{"t":1}` ||
		msgs[0].Properties["alert"] != "high" || msgs[0].ContentType != "application/json" {
		t.Errorf("recorded %+v, want the two messages %v", msgs, ids)
	}

	// report: over WebSockets, which share the service string's host:port.
	res = runCLI(t, env, "", "device", "report", "dev1", "--websockets", "--patch", `{"firmware":"1.2.0"}`)
	if res.code != exitOK || !strings.Contains(res.stdout, `"version"`) {
		t.Fatalf("device report: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "twin", "show", "dev1")
	var tw struct {
		Properties struct {
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &tw); err != nil || tw.Properties.Reported["firmware"] != "1.2.0" {
		t.Errorf("twin show after report: %q (%v), want firmware 1.2.0", res.stdout, err)
	}

	// listen: three events, then it ends by itself.
	l := runBackground(t, env, "device", "listen", "dev1", "--device-host", host, "--count", "3",
		"--method-status", "201", "--method-payload", `{"result":"done"}`)
	if ev := l.next(t); ev["event"] != "connected" || ev["deviceId"] != "dev1" {
		t.Fatalf("first line %v, want connected", ev)
	}
	// The subscriptions exist once "connected" is printed: no connect
	// timeout is needed.
	res = runCLI(t, env, "", "method", "invoke", "dev1", "--name", "reboot", "--payload", `{"delay":1}`, "--timeout", "10s")
	if res.code != exitOK {
		t.Fatalf("method invoke: exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `{"status":201,"payload":{"result":"done"}}`)
	ev := l.next(t)
	delete(ev, "requestId")
	if diff := cmp.Diff(map[string]any{"event": "method", "name": "reboot", "payload": map[string]any{"delay": 1.0},
		"status": 201.0, "response": map[string]any{"result": "done"}}, ev); diff != "" {
		t.Errorf("method event (-want +got):\n%s", diff)
	}
	if res = runCLI(t, env, "", "twin", "update", "dev1", "--desired", `{"fan":2}`); res.code != exitOK {
		t.Fatalf("twin update: exit %d, stderr %q", res.code, res.stderr)
	}
	ev = l.next(t)
	if diff := cmp.Diff(map[string]any{"event": "desired", "version": 2.0, "patch": map[string]any{"fan": 2.0, "$version": 2.0}}, ev); diff != "" {
		t.Errorf("desired event (-want +got):\n%s", diff)
	}
	if res = runCLI(t, env, "", "c2d", "send", "dev1", "--body", "hello", "--message-id", "m1", "--property", "k=v"); res.code != exitOK {
		t.Fatalf("c2d send: exit %d, stderr %q", res.code, res.stderr)
	}
	ev = l.next(t)
	if ev["event"] != "c2d" || ev["messageId"] != "m1" || ev["body"] != "hello" || !cmp.Equal(ev["properties"], map[string]any{"k": "v"}) {
		t.Errorf("c2d event %v, want message m1 with body hello and k=v", ev)
	}
	if r := l.wait(t); r.code != exitOK {
		t.Errorf("listen after --count 3: exit %d, stderr %q; want 0", r.code, r.stderr)
	}
}

// TestModuleSideAgainstEmulator acts as a module: its identity, its twin
// and a method invoked on it, all through the CLI.
func TestModuleSideAgainstEmulator(t *testing.T) {
	srv, env := emulatorEnv(t)
	host := mqttHost(t, srv)
	for _, args := range [][]string{{"device", "create", "dev1"}, {"module", "create", "dev1", "filter", "--device-host", host}} {
		if res := runCLI(t, env, "", args...); res.code != exitOK {
			t.Fatalf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
	}
	res := runCLI(t, env, "", "module", "connection-string", "show", "dev1", "filter", "--device-host", host)
	var cs struct{ ConnectionString string }
	if err := json.Unmarshal([]byte(res.stdout), &cs); err != nil || !strings.Contains(cs.ConnectionString, ";ModuleId=filter;") {
		t.Fatalf("module connection-string show: %q (%v)", res.stdout, err)
	}
	res = runCLI(t, env, "", "module", "list", "dev1")
	var mods []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &mods); err != nil || len(mods) != 1 || mods[0]["moduleId"] != "filter" {
		t.Errorf("module list: %q (%v), want [filter]", res.stdout, err)
	}

	// The module's own connection string, from the environment.
	modEnv := map[string]string{"IOTHUB_DEVICE_CONNECTION_STRING": cs.ConnectionString, "IOTHUB_CA_FILE": srv.CAFile()}
	l := runBackground(t, modEnv, "device", "listen", "--count", "2")
	if ev := l.next(t); ev["event"] != "connected" || ev["deviceId"] != "dev1" || ev["moduleId"] != "filter" {
		t.Fatalf("first line %v, want connected as dev1/filter", ev)
	}
	res = runCLI(t, env, "", "module", "method", "invoke", "dev1", "filter", "--name", "reset")
	if res.code != exitOK {
		t.Fatalf("module method invoke: exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `{"status":200,"payload":null}`)
	if ev := l.next(t); ev["event"] != "method" || ev["name"] != "reset" {
		t.Errorf("got %v, want the reset method", ev)
	}
	res = runCLI(t, env, "", "module", "twin", "update", "dev1", "filter", "--desired", `{"threshold":30}`, "--tags", `{"role":"edge"}`)
	if res.code != exitOK || !strings.Contains(res.stdout, `"threshold": 30`) || !strings.Contains(res.stdout, `"role": "edge"`) {
		t.Fatalf("module twin update: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if ev := l.next(t); ev["event"] != "desired" || !cmp.Equal(ev["patch"], map[string]any{"threshold": 30.0, "$version": 2.0}) {
		t.Errorf("got %v, want the desired patch", ev)
	}
	if r := l.wait(t); r.code != exitOK {
		t.Errorf("listen: exit %d, stderr %q", r.code, r.stderr)
	}
	res = runCLI(t, env, "", "module", "report", "dev1")
	if res.code != exitUsage {
		t.Errorf("module report: exit %d, want %d (no such command)", res.code, exitUsage)
	}
	res = runCLI(t, modEnv, "", "device", "report", "--patch", `{"ok":true}`)
	if res.code != exitOK {
		t.Errorf("device report as the module: exit %d, stderr %q", res.code, res.stderr)
	}
	if tw, err := srv.Twin("dev1", "filter"); err != nil || !strings.Contains(string(tw), `"ok":true`) {
		t.Errorf("module twin %s (%v), want reported ok true", tw, err)
	}
	if res = runCLI(t, env, "", "module", "delete", "dev1", "filter"); res.code != exitOK {
		t.Errorf("module delete: exit %d, stderr %q", res.code, res.stderr)
	}
	if res = runCLI(t, env, "", "module", "show", "dev1", "filter"); res.code != exitError || !strings.Contains(res.stderr, "ModuleNotFound") {
		t.Errorf("module show after delete: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestDeviceCredentials checks where the device-side commands take the
// device's credentials from.
func TestDeviceCredentials(t *testing.T) {
	srv, env := emulatorEnv(t)
	host := mqttHost(t, srv)
	cs1, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.CreateDevice("dev2"); err != nil {
		t.Fatal(err)
	}
	// IOTHUB_DEVICE_CONNECTION_STRING names dev1: "device send dev2" looks
	// dev2 up in the registry instead of sending as dev1.
	withDev := map[string]string{"IOTHUB_CONNECTION_STRING": env["IOTHUB_CONNECTION_STRING"], "IOTHUB_CA_FILE": env["IOTHUB_CA_FILE"], "IOTHUB_DEVICE_CONNECTION_STRING": cs1}
	if res := runCLI(t, withDev, "", "device", "send", "dev2", "--device-host", host, "--body", "x"); res.code != exitOK {
		t.Fatalf("send as dev2: exit %d, stderr %q", res.code, res.stderr)
	}
	if res := runCLI(t, withDev, "", "device", "send", "--body", "y"); res.code != exitOK {
		t.Fatalf("send as dev1 from the environment: exit %d, stderr %q", res.code, res.stderr)
	}
	if m, err := srv.WaitMessages("dev2", 1, 5*time.Second); err != nil || string(m[0].Body) != "x" {
		t.Errorf("dev2 messages %v (%v)", m, err)
	}
	if m, err := srv.WaitMessages("dev1", 1, 5*time.Second); err != nil || string(m[0].Body) != "y" {
		t.Errorf("dev1 messages %v (%v)", m, err)
	}

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{"flag names another device", env, []string{"device", "send", "dev2", "--body", "x", "--device-connection-string", cs1}, exitUsage, "--device-connection-string is for dev1, not dev2"},
		{"no id and no device string", env, []string{"device", "send", "--body", "x"}, exitUsage, "give a device id, or the device's connection string"},
		{"two ids", env, []string{"device", "send", "a", "b", "--body", "x"}, exitUsage, "takes at most one argument"},
		{"no body", env, []string{"device", "send", "dev1"}, exitUsage, "device send needs --body"},
		{"zero count", env, []string{"device", "send", "dev1", "--body", "x", "--count", "0"}, exitUsage, "--count must be at least 1"},
		{"report without patch", env, []string{"device", "report", "dev1"}, exitUsage, "device report needs --patch"},
		{"report with a wrapper", env, []string{"device", "report", "dev1", "--patch", `{"properties":{"reported":{}}}`}, exitUsage, "without a \"properties\""},
		{"listen bad status", env, []string{"device", "listen", "dev1", "--method-status", "2"}, exitUsage, "--method-status must be a three-digit status"},
		{"unknown device", env, []string{"device", "send", "nobody", "--body", "x"}, exitError, "DeviceNotFound"},
		{"bad device string", map[string]string{}, []string{"device", "send", "--body", "x", "--device-connection-string", "HostName=h"}, exitUsage, "device connection string:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code != tt.wantCode || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d with %q", res.code, res.stderr, tt.wantCode, tt.want)
			}
		})
	}
}
