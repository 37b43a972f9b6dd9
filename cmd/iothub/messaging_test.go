// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// emulatorEnv starts an emulator and returns it with the environment that
// points the CLI at it.
func emulatorEnv(t *testing.T) (*emulator.Server, map[string]string) {
	t.Helper()
	srv := emulator.RunT(t)
	return srv, map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}
}

// sendTelemetry registers id if needed, connects it over MQTT and sends ms.
func sendTelemetry(t *testing.T, srv *emulator.Server, id string, ms ...*device.Message) {
	t.Helper()
	cs, err := srv.DeviceConnectionString(id)
	if err != nil {
		if cs, err = srv.CreateDevice(id); err != nil {
			t.Fatalf("CreateDevice(%q): %v", id, err)
		}
	}
	d, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("Connect(%s): %v", id, err)
	}
	defer d.Close()
	for _, m := range ms {
		if err := d.SendMessage(ctx, m); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
}

// parseEvents decodes monitor-events output, one JSON object per line.
func parseEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	evs := []map[string]any{}
	for line := range strings.Lines(out) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// ignoreEventTimes drops the fields set by the hub that a test cannot know.
var ignoreEventTimes = cmpopts.IgnoreMapEntries(func(k string, v any) bool {
	return k == "enqueuedTime" || k == "sequenceNumber"
})

func TestMonitorEventsAgainstEmulator(t *testing.T) {
	srv, env := emulatorEnv(t)
	sendTelemetry(t, srv, "dev1",
		&device.Message{Body: []byte(`{"t":21.5}`), MessageID: "42", ContentType: "application/json",
			ContentEncoding: "utf-8", Properties: map[string]string{"alert": "high"}},
		&device.Message{Body: []byte{0xff, 0xfe, 0x00}},
	)
	sendTelemetry(t, srv, "dev2", &device.Message{Body: []byte("plain")})

	res := runCLI(t, env, "", "monitor-events", "--from-start", "--device", "dev1", "--timeout", "2s")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q; want 0 at the timeout", res.code, res.stderr)
	}
	evs := parseEvents(t, res.stdout)
	want := []map[string]any{
		{
			"deviceId": "dev1", "properties": map[string]any{"alert": "high"}, "body": `{"t":21.5}`,
			"systemProperties": map[string]any{"messageId": "42", "contentType": "application/json", "contentEncoding": "utf-8",
				"connectionAuthMethod": "sas", "transport": "mqtt"},
		},
		{
			"deviceId": "dev1", "properties": map[string]any{}, "body": "//4A", "bodyEncoding": "base64",
			"systemProperties": map[string]any{"connectionAuthMethod": "sas", "transport": "mqtt"},
		},
	}
	if diff := cmp.Diff(want, evs, ignoreEventTimes); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	first, ok := evs[0]["sequenceNumber"].(float64)
	if !ok || first < 1 {
		t.Fatalf("sequenceNumber %v, want a positive number", evs[0]["sequenceNumber"])
	}
	if _, err := time.Parse(time.RFC3339Nano, evs[0]["enqueuedTime"].(string)); err != nil {
		t.Errorf("enqueuedTime %v: %v", evs[0]["enqueuedTime"], err)
	}

	// --since skips what was seen; without --device every device shows.
	res = runCLI(t, env, "", "monitor-events", "--since", strconv.FormatFloat(first, 'f', -1, 64), "--timeout", "2s")
	var got []string
	for _, ev := range parseEvents(t, res.stdout) {
		got = append(got, ev["deviceId"].(string)+":"+ev["body"].(string))
	}
	if diff := cmp.Diff([]string{"dev1://4A", "dev2:plain"}, got); res.code != exitOK || diff != "" {
		t.Errorf("--since: exit %d, stderr %q, events (-want +got):\n%s", res.code, res.stderr, diff)
	}
}

// TestMonitorEventsTails checks that monitor-events starts from now (like
// az iot hub monitor-events), prints messages sent while it runs, and ends
// cleanly when interrupted.
func TestMonitorEventsTails(t *testing.T) {
	srv, env := emulatorEnv(t)
	sendTelemetry(t, srv, "dev1", &device.Message{MessageID: "before"})

	pr, pw := io.Pipe()
	defer pr.Close() // unblocks the command's writes if the test fails early
	var errOut strings.Builder
	c := &cli{getenv: func(k string) string { return env[k] }, stdin: strings.NewReader(""), stdout: pw, stderr: &errOut}
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	code := make(chan int, 1)
	go func() {
		code <- c.run(ctx, []string{"monitor-events", "--timeout", "15s"})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	next := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("monitor-events ended early: %v, stderr %q", lines.Err(), errOut.String())
		}
		var ev struct {
			SystemProperties struct {
				MessageID string `json:"messageId"`
			} `json:"systemProperties"`
		}
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return ev.SystemProperties.MessageID
	}
	// The command reads the log's head after it starts, at a moment the
	// test cannot see: keep sending until a line shows up. Whatever it
	// prints first, it must not be the message sent before it started.
	stop := make(chan struct{})
	var stopOnce sync.Once
	var senders sync.WaitGroup
	halt := func() { stopOnce.Do(func() { close(stop) }); senders.Wait() }
	defer halt()
	senders.Add(1)
	go func() {
		defer senders.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				sendTelemetry(t, srv, "dev1", &device.Message{MessageID: "during-" + strconv.Itoa(i)})
			}
		}
	}()
	id := next()
	halt()
	if !strings.HasPrefix(id, "during-") {
		t.Fatalf("first event %q, want one sent while monitoring (monitor-events starts from now)", id)
	}
	interrupt() // as Ctrl-C does through main's signal context
	go io.Copy(io.Discard, pr)
	if got := <-code; got != exitOK {
		t.Errorf("exit %d after interrupt, stderr %q; want 0", got, errOut.String())
	}
}

func TestC2DAgainstEmulator(t *testing.T) {
	srv, env := emulatorEnv(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, []byte{0x01, 0x02}, 0o600); err != nil {
		t.Fatal(err)
	}

	res := runCLI(t, env, "", "c2d", "send", "dev1", "--ack", "full", "--ttl", "2h", "--property", "a=1",
		"--property", "b=x=y", "--message-id", "m1", "--correlation-id", "c1", "--user-id", "u1",
		"--content-type", "text/plain", "--content-encoding", "utf-8", "--body", "hello")
	if res.code != exitOK {
		t.Fatalf("c2d send: exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `{"deviceId":"dev1","messageId":"m1"}`)
	res = runCLI(t, env, "", "c2d", "send", "dev1", "--body", "@"+file)
	if res.code != exitOK {
		t.Fatalf("c2d send @file: exit %d, stderr %q", res.code, res.stderr)
	}
	var out struct {
		MessageID string `json:"messageId"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || !uuidV4.MatchString(out.MessageID) {
		t.Errorf("c2d send without --message-id printed %q (%v), want a generated UUID", res.stdout, err)
	}
	if res := runCLI(t, env, "from stdin", "c2d", "send", "dev1", "--body", "-", "--message-id", "m3"); res.code != exitOK {
		t.Fatalf("c2d send -: exit %d, stderr %q", res.code, res.stderr)
	}

	pending, err := srv.PendingC2D("dev1")
	if err != nil {
		t.Fatal(err)
	}
	want := []*emulator.C2DMessage{
		{DeviceID: "dev1", MessageID: "m1", CorrelationID: "c1", UserID: "u1", Ack: "full", ContentType: "text/plain",
			ContentEncoding: "utf-8", Properties: map[string]string{"a": "1", "b": "x=y"},
			Body: []byte("hello")},
		{DeviceID: "dev1", MessageID: out.MessageID, Ack: "none", Body: []byte{0x01, 0x02}},
		{DeviceID: "dev1", MessageID: "m3", Ack: "none", Body: []byte("from stdin")},
	}
	opts := cmpopts.IgnoreFields(emulator.C2DMessage{}, "EnqueuedTime", "ExpiryTime")
	if diff := cmp.Diff(want, pending, opts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("queued messages (-want +got):\n%s", diff)
	}
	if len(pending) > 0 {
		if ttl := pending[0].ExpiryTime.Sub(pending[0].EnqueuedTime); ttl != 2*time.Hour {
			t.Errorf("TTL %v, want 2h", ttl)
		}
	}

	if res := runCLI(t, env, "", "c2d", "feedback"); res.code != exitOK || strings.TrimSpace(res.stdout) != "[]" {
		t.Errorf("c2d feedback: exit %d, stdout %q, stderr %q; want []", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "", "c2d", "send", "nobody", "--body", "x"); res.code != exitError || !strings.Contains(res.stderr, "DeviceNotFound") {
		t.Errorf("c2d send to an unknown device: exit %d, stderr %q; want 1 with DeviceNotFound", res.code, res.stderr)
	}
}

func TestC2DFeedbackCommand(t *testing.T) {
	const records = `[{"originalMessageId":"m1","deviceGenerationId":"g1","deviceId":"dev1",
		"enqueuedTimeUtc":"2024-05-02T09:20:11Z","statusCode":"Success","description":"Success"}]`
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, records) })
	res := runCLI(t, envFor(h), "", "c2d", "feedback")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, records)
	if r := h.requests()[0]; r.method != "GET" || r.uri != "/emulator/feedback?api-version=2021-04-12" {
		t.Errorf("got %s %s, want GET /emulator/feedback", r.method, r.uri)
	}
}

// TestEmulatorOnlyCommandsOnRealHub runs the emulator-only commands against
// a hub without /emulator routes.
func TestEmulatorOnlyCommandsOnRealHub(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	for _, args := range [][]string{
		{"monitor-events", "--timeout", "5s"},
		{"c2d", "send", "dev1", "--body", "x"},
		{"c2d", "feedback"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runCLI(t, envFor(h), "", args...)
			if res.code != exitError || !strings.Contains(res.stderr, "emulator-only") || res.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 with an emulator-only error", res.code, res.stdout, res.stderr)
			}
		})
	}
}

func TestMessagingUsageErrors(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("unexpected request %s", r.URL) })
	env := envFor(h)
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"send without body", []string{"c2d", "send", "dev1"}, "needs --body"},
		{"send without id", []string{"c2d", "send", "--body", "x"}, "c2d send takes one argument, the device id, got 0 arguments"},
		{"property without value", []string{"c2d", "send", "dev1", "--body", "x", "--property", "novalue"}, "want NAME=VALUE"},
		{"property without name", []string{"c2d", "send", "dev1", "--body", "x", "--property", "=v"}, "want NAME=VALUE"},
		{"bad ack", []string{"c2d", "send", "dev1", "--body", "x", "--ack", "always"}, "--ack must be one of none, positive, negative, full"},
		{"negative ttl", []string{"c2d", "send", "dev1", "--body", "x", "--ttl", "-1s"}, "--ttl must not be negative"},
		{"c2d without subcommand", []string{"c2d"}, "c2d needs a subcommand"},
		{"feedback with arguments", []string{"c2d", "feedback", "dev1"}, "takes no arguments"},
		{"monitor with arguments", []string{"monitor-events", "dev1"}, "takes no arguments"},
		{"monitor negative timeout", []string{"monitor-events", "--timeout", "-1s"}, "--timeout must not be negative"},
		{"monitor bad since", []string{"monitor-events", "--since", "-3"}, `invalid argument "-3" for "--since"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, env, "", tt.args...)
			if res.code != exitUsage || !strings.Contains(res.stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d with %q", res.code, res.stderr, exitUsage, tt.wantStderr)
			}
		})
	}
}
