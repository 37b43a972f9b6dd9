// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
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
	return k == "enqueuedTime" || k == "sequenceNumber" || k == "offset"
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
	auth := `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`
	dev, err := srv.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	partition := strconv.Itoa(srv.PartitionOf("dev1"))
	want := []map[string]any{
		{
			"deviceId": "dev1", "partition": partition, "properties": map[string]any{"alert": "high"}, "body": `{"t":21.5}`,
			"systemProperties": map[string]any{"messageId": "42", "contentType": "application/json", "contentEncoding": "utf-8",
				"connectionAuthMethod": auth, "connectionAuthGenerationId": dev.GenerationID, "messageSource": "Telemetry"},
		},
		{
			"deviceId": "dev1", "partition": partition, "properties": map[string]any{}, "body": "//4A", "bodyEncoding": "base64",
			"systemProperties": map[string]any{"connectionAuthMethod": auth, "connectionAuthGenerationId": dev.GenerationID, "messageSource": "Telemetry"},
		},
	}
	if diff := cmp.Diff(want, evs, ignoreEventTimes); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if seq0, seq1 := evs[0]["sequenceNumber"].(float64), evs[1]["sequenceNumber"].(float64); seq1 != seq0+1 {
		t.Errorf("sequence numbers %v and %v, want consecutive ones", seq0, seq1)
	}
	if _, err := time.Parse(time.RFC3339Nano, evs[1]["enqueuedTime"].(string)); err != nil {
		t.Fatalf("enqueuedTime %v: %v", evs[1]["enqueuedTime"], err)
	}

	// --count, and every device without --device.
	res = runCLI(t, env, "", "monitor-events", "--from-start", "--count", "3", "--timeout", "10s")
	var got []string
	for _, ev := range parseEvents(t, res.stdout) {
		got = append(got, ev["deviceId"].(string)+":"+ev["body"].(string))
	}
	sort.Strings(got)
	if diff := cmp.Diff([]string{"dev1://4A", "dev1:{\"t\":21.5}", "dev2:plain"}, got); res.code != exitOK || diff != "" {
		t.Errorf("--count 3: exit %d, stderr %q, events (-want +got):\n%s", res.code, res.stderr, diff)
	}

	// --enqueued-after skips what came before; --partition reads one.
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	sendTelemetry(t, srv, "dev1", &device.Message{MessageID: "late"})
	for _, args := range [][]string{
		{"--enqueued-after", cut.Format(time.RFC3339Nano)},
		{"--from-start", "--partition", partition, "--device", "dev1", "--module", ""},
	} {
		res = runCLI(t, env, "", append([]string{"monitor-events", "--timeout", "2s"}, args...)...)
		var ids []string
		for _, ev := range parseEvents(t, res.stdout) {
			if sp, ok := ev["systemProperties"].(map[string]any); ok {
				ids = append(ids, fmt.Sprint(sp["messageId"]))
			}
		}
		wantIDs := []string{"late"}
		if args[0] == "--from-start" {
			wantIDs = []string{"42", "<nil>", "late"}
		}
		if diff := cmp.Diff(wantIDs, ids); res.code != exitOK || diff != "" {
			t.Errorf("%v: exit %d, stderr %q, message ids (-want +got):\n%s", args, res.code, res.stderr, diff)
		}
	}
}

// TestMonitorEventsFromEventHubConnectionString reads with the endpoint's
// own connection strings, as printed by the emulator, and over AMQP over
// TLS with --amqp-addr.
func TestMonitorEventsFromEventHubConnectionString(t *testing.T) {
	srv, env := emulatorEnv(t)
	sendTelemetry(t, srv, "dev1", &device.Message{MessageID: "m1"})
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"TLS", map[string]string{"IOTHUB_EVENTHUB_CONNECTION_STRING": srv.EventHubConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}, nil},
		{"UseDevelopmentEmulator", nil, []string{"--eventhub-connection-string", srv.EventHubEmulatorConnectionString()}},
		{"redirect over AMQP over TLS", env, []string{"--amqp-addr", srv.AMQPAddr()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, tt.env, "", append([]string{"monitor-events", "--from-start", "--count", "1", "--timeout", "10s"}, tt.args...)...)
			evs := parseEvents(t, res.stdout)
			if res.code != exitOK || len(evs) != 1 || evs[0]["deviceId"] != "dev1" {
				t.Errorf("exit %d, stderr %q, events %v; want dev1's m1", res.code, res.stderr, evs)
			}
		})
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
	// Over AMQP over TLS on the emulator's AMQP port.
	res = runCLI(t, env, "", "c2d", "send", "dev1", "--body", "@"+file, "--amqp-addr", srv.AMQPAddr())
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
		if ttl := pending[0].ExpiryTime.Sub(pending[0].EnqueuedTime); ttl > 2*time.Hour || ttl < 2*time.Hour-10*time.Second {
			t.Errorf("TTL %v, want 2h less the time in transit", ttl)
		}
	}

	if res := runCLI(t, env, "", "c2d", "feedback", "--timeout", "500ms"); res.code != exitOK || res.stdout != "" {
		t.Errorf("c2d feedback of an empty queue: exit %d, stdout %q, stderr %q; want nothing until the timeout", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "c2d", "send", "nobody", "--body", "x")
	if res.code != exitError || !strings.Contains(res.stderr, "DeviceNotFound") || !strings.Contains(res.stderr, "404") {
		t.Errorf("c2d send to an unknown device: exit %d, stderr %q; want 1 with 404 DeviceNotFound", res.code, res.stderr)
	}

	res = runCLI(t, env, "", "c2d", "purge", "dev1")
	if res.code != exitOK {
		t.Fatalf("c2d purge: exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `{"deviceId":"dev1","totalMessagesPurged":3}`)
	if res := runCLI(t, env, "", "c2d", "purge", "nobody"); res.code != exitError || !strings.Contains(res.stderr, "DeviceNotFound") {
		t.Errorf("c2d purge of an unknown device: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestC2DFeedbackAgainstEmulator has a device settle messages and reads
// their feedback with each settle mode, over AMQP and over HTTPS.
func TestC2DFeedbackAgainstEmulator(t *testing.T) {
	srv, env := emulatorEnv(t)
	cs, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := make(chan string, 10)
	d.OnMessage(func(m *device.Message) { got <- m.MessageID })
	deliver := func(id string) {
		t.Helper()
		if res := runCLI(t, env, "", "c2d", "send", "dev1", "--body", "x", "--ack", "full", "--message-id", id); res.code != exitOK {
			t.Fatalf("c2d send: exit %d, stderr %q", res.code, res.stderr)
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("the device did not get the message")
		}
		// The device completes it after the handler returns.
		waitFor(t, "the feedback of "+id, func() bool {
			fb, err := srv.Feedback()
			return err == nil && slices.ContainsFunc(fb, func(f emulator.Feedback) bool { return f.OriginalMessageID == id })
		})
	}
	records := func(res result) []string {
		t.Helper()
		var ids []string
		for _, ev := range parseEvents(t, res.stdout) {
			if ev["statusCode"] != "Success" || ev["deviceId"] != "dev1" || ev["batchMessageId"] == "" {
				t.Errorf("record %v, want dev1's Success in a batch", ev)
			}
			ids = append(ids, ev["originalMessageId"].(string))
		}
		return ids
	}

	deliver("m1")
	// Abandon leaves it in the queue; the command ends when it comes again.
	res := runCLI(t, env, "", "c2d", "feedback", "--settle", "abandon", "--timeout", "10s")
	if diff := cmp.Diff([]string{"m1"}, records(res)); res.code != exitOK || diff != "" {
		t.Errorf("--settle abandon: exit %d, stderr %q, records (-want +got):\n%s", res.code, res.stderr, diff)
	}
	// Over HTTPS, abandoned too. The AMQP reader's last abandon is a
	// disposition the hub applies after that command may have exited, and
	// until then the batch is locked: read until it is back.
	waitFor(t, "m1's batch back in the queue", func() bool {
		res = runCLI(t, env, "", "c2d", "feedback", "--https", "--settle", "abandon")
		return res.code != exitOK || res.stdout != ""
	})
	if diff := cmp.Diff([]string{"m1"}, records(res)); res.code != exitOK || diff != "" {
		t.Errorf("--https --settle abandon: exit %d, stderr %q, records (-want +got):\n%s", res.code, res.stderr, diff)
	}
	// Complete, waiting on its id.
	res = runCLI(t, env, "", "c2d", "feedback", "--wait-on-id", "m1", "--timeout", "10s")
	if diff := cmp.Diff([]string{"m1"}, records(res)); res.code != exitOK || diff != "" {
		t.Errorf("--wait-on-id: exit %d, stderr %q, records (-want +got):\n%s", res.code, res.stderr, diff)
	}
	deliver("m2")
	res = runCLI(t, env, "", "c2d", "feedback", "--https")
	if diff := cmp.Diff([]string{"m2"}, records(res)); res.code != exitOK || diff != "" {
		t.Errorf("--https: exit %d, stderr %q, records (-want +got):\n%s", res.code, res.stderr, diff)
	}
	// Everything was completed: nothing left.
	if res := runCLI(t, env, "", "c2d", "feedback", "--https"); res.code != exitOK || res.stdout != "" {
		t.Errorf("an emptied queue: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	deliver("m3")
	if res := runCLI(t, env, "", "c2d", "feedback", "--count", "1", "--settle", "reject", "--websockets", "--timeout", "10s"); res.code != exitOK || len(records(res)) != 1 {
		t.Errorf("--settle reject: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// TestC2DFeedbackHTTPSWire checks the HTTPS feedback calls against a fake
// hub: receive, complete, and the end at an empty queue.
func TestC2DFeedbackHTTPSWire(t *testing.T) {
	const records = `[{"originalMessageId":"m1","deviceGenerationId":"g1","deviceId":"dev1",
		"enqueuedTimeUtc":"2024-05-02T09:20:11Z","statusCode":"Success","description":"Success"}]`
	var mu sync.Mutex
	gets := 0
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		if n > 1 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("ETag", `"lock-1"`)
		w.Header().Set("iothub-messageid", "batch-1")
		io.WriteString(w, records)
	})
	res := runCLI(t, envFor(h), "", "c2d", "feedback", "--https")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `{"originalMessageId":"m1","deviceGenerationId":"g1","deviceId":"dev1",
		"enqueuedTimeUtc":"2024-05-02T09:20:11Z","statusCode":"Success","description":"Success","batchMessageId":"batch-1"}`)
	var calls []string
	for _, r := range h.requests() {
		calls = append(calls, r.method+" "+r.uri)
	}
	want := []string{
		"GET /messages/serviceBound/feedback?api-version=2021-04-12",
		"DELETE /messages/serviceBound/feedback/lock-1?api-version=2021-04-12",
		"GET /messages/serviceBound/feedback?api-version=2021-04-12",
	}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestFileNotificationReceiveAgainstEmulator has a device finish an upload
// (to a fake blob store) and receives the hub's notification.
func TestFileNotificationReceiveAgainstEmulator(t *testing.T) {
	store := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Last-Modified", "Thu, 02 May 2024 09:00:00 GMT")
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer store.Close()
	storeCA := filepath.Join(t.TempDir(), "store.pem")
	if err := os.WriteFile(storeCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: store.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := emulator.RunT(t, emulator.WithStorage("DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint="+store.URL+"/devstoreaccount1;", storeCA))
	env := map[string]string{"IOTHUB_CONNECTION_STRING": srv.ConnectionString(), "IOTHUB_CA_FILE": srv.CAFile()}
	cs, err := srv.CreateDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithHTTPSHost(srv.HTTPSHost()),
		device.WithStorageHTTPClient(store.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.UploadToBlob(ctx, "a.txt", strings.NewReader("hello"), 5); err != nil {
		t.Fatalf("UploadToBlob: %v", err)
	}
	res := runCLI(t, env, "", "file-notification", "receive", "--settle", "abandon", "--timeout", "10s")
	evs := parseEvents(t, res.stdout)
	if res.code != exitOK || len(evs) != 1 || evs[0]["blobName"] != "cam1/a.txt" || evs[0]["blobSizeInBytes"] != float64(5) {
		t.Fatalf("--settle abandon: exit %d, stderr %q, notifications %v", res.code, res.stderr, evs)
	}
	res = runCLI(t, env, "", "file-notification", "receive", "--count", "1", "--timeout", "10s", "--amqp-addr", srv.AMQPAddr())
	if evs := parseEvents(t, res.stdout); res.code != exitOK || len(evs) != 1 || evs[0]["deviceId"] != "cam1" {
		t.Fatalf("receive: exit %d, stderr %q, notifications %v", res.code, res.stderr, evs)
	}
	waitFor(t, "the completed notification to leave the queue", func() bool {
		left, err := srv.FileNotifications()
		return err == nil && len(left) == 0
	})
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAMQPCommandsOnHubWithoutAMQP runs the AMQP commands against a server
// that has no AMQP: each fails at once and says what it found.
func TestAMQPCommandsOnHubWithoutAMQP(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	for _, args := range [][]string{
		{"monitor-events", "--timeout", "20s"},
		{"c2d", "send", "dev1", "--body", "x"},
		{"c2d", "feedback", "--timeout", "20s"},
		{"file-notification", "receive", "--timeout", "20s"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runCLI(t, envFor(h), "", args...)
			if res.code != exitError || !strings.Contains(res.stderr, "refused the AMQP WebSocket upgrade with HTTP 404") || res.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 with the refused upgrade", res.code, res.stdout, res.stderr)
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
		{"monitor start twice", []string{"monitor-events", "--from-start", "--enqueued-after", "1m"}, "--from-start or --enqueued-after, not both"},
		{"monitor bad time", []string{"monitor-events", "--enqueued-after", "yesterday"}, `"yesterday" is neither`},
		{"monitor negative count", []string{"monitor-events", "--count", "-1"}, "--count must not be negative"},
		{"monitor websockets and address", []string{"monitor-events", "--websockets", "--amqp-addr", "h:1"}, "--websockets or --amqp-addr, not both"},
		{"feedback bad settle", []string{"c2d", "feedback", "--settle", "ignore"}, "--settle must be one of complete, abandon, reject"},
		{"feedback https reject", []string{"c2d", "feedback", "--https", "--settle", "reject"}, "--https cannot reject"},
		{"feedback https over websockets", []string{"c2d", "feedback", "--https", "--websockets"}, "--https reads over HTTPS"},
		{"purge without id", []string{"c2d", "purge"}, "c2d purge takes one argument, the device id"},
		{"notifications with arguments", []string{"file-notification", "receive", "x"}, "takes no arguments"},
		{"notifications negative timeout", []string{"file-notification", "receive", "--timeout", "-1s"}, "--timeout must not be negative"},
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
