// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// TestJobCommandsAgainstEmulator schedules, watches, lists and cancels
// jobs with the job commands against an emulator whose clock the test
// moves.
func TestJobCommandsAgainstEmulator(t *testing.T) {
	srv := emulator.RunT(t)
	now := time.Now().UTC().Truncate(time.Second)
	srv.SetTime(now)
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
	type job struct {
		JobID, Type, Status, StartTime string
		DeviceJobStatistics            map[string]int
	}

	// A twin update ten minutes ahead, run by moving the clock.
	var j job
	decode("job create twin", runCLI(t, env, "", "job", "create", "twin-1", "--type", "scheduleUpdateTwin",
		"--query", "deviceId = 'dev1'", "--patch", `{"tags":{"floor":3}}`, "--start", "10m"), &j)
	if j.JobID != "twin-1" || j.Type != "scheduleUpdateTwin" || j.Status != "queued" {
		t.Fatalf("job create: got %+v", j)
	}
	testutil.Eventually(t, "twin-1 scheduled", func() bool {
		decode("job show", runCLI(t, env, "", "job", "show", "twin-1"), &j)
		return j.Status == "scheduled"
	})
	// --start 10m counts from the caller's clock, which is a little ahead
	// of the emulator's (frozen at now).
	if start, _ := time.Parse(time.RFC3339, j.StartTime); start.Sub(now.Add(10*time.Minute)).Abs() > 5*time.Second {
		t.Errorf("startTime: got %s, want about now + 10m (%s)", j.StartTime, now.Add(10*time.Minute))
	}
	// One active job on S1: a second is refused until the first ends.
	res := runCLI(t, env, "", "job", "create", "m-1", "--type", "scheduleDeviceMethod", "--query", "*", "--name", "reboot")
	if res.code != exitError || !strings.Contains(res.stderr, "ThrottlingMaxActiveJobCountExceeded") {
		t.Errorf("second job: exit %d, stderr %q", res.code, res.stderr)
	}
	srv.FastForward(11 * time.Minute)
	testutil.Eventually(t, "twin-1 completed", func() bool {
		decode("job show", runCLI(t, env, "", "job", "show", "twin-1"), &j)
		return j.Status == "completed"
	})
	if j.DeviceJobStatistics["succeededCount"] != 1 {
		t.Errorf("statistics: got %v", j.DeviceJobStatistics)
	}
	tw, err := srv.Twin("dev1", "")
	if err != nil || !strings.Contains(string(tw), `"floor":3`) {
		t.Errorf("twin: %s, %v", tw, err)
	}

	// A method job to an offline device, waited for.
	decode("job create method", runCLI(t, env, "", "job", "create", "m-1", "--type", "scheduleDeviceMethod", "--query", "*",
		"--name", "reboot", "--payload", `{"delay":1}`, "--timeout", "5s", "--wait", "--poll-interval", "10ms"), &j)
	if j.Status != "completed" || j.DeviceJobStatistics["failedCount"] != 1 {
		t.Errorf("method job: got %+v", j)
	}
	var rows []struct {
		DeviceID, Status string
		Error            struct{ Code string }
	}
	decode("job devices", runCLI(t, env, "", "job", "devices", "m-1"), &rows)
	if len(rows) != 1 || rows[0].DeviceID != "dev1" || rows[0].Status != "failed" || rows[0].Error.Code != "DeviceNotOnline" {
		t.Errorf("job devices: got %+v", rows)
	}
	decode("job devices --status", runCLI(t, env, "", "job", "devices", "m-1", "--status", "completed"), &rows)
	if len(rows) != 0 {
		t.Errorf("job devices --status completed: got %+v", rows)
	}

	// Cancel a job an hour ahead; list by type and status.
	decode("job create later", runCLI(t, env, "", "job", "create", "later", "--type", "scheduleUpdateTwin", "--query", "*",
		"--patch", `{"properties":{"desired":{"x":1}}}`, "--start", now.Add(2*time.Hour).Format(time.RFC3339)), &j)
	decode("job cancel", runCLI(t, env, "", "job", "cancel", "later"), &j)
	if j.Status != "cancelled" {
		t.Errorf("job cancel: got %+v", j)
	}
	var jobs []job
	decode("job list", runCLI(t, env, "", "job", "list", "--page-size", "1"), &jobs)
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.JobID)
	}
	if strings.Join(ids, ",") != "twin-1,m-1,later" {
		t.Errorf("job list: got %v", ids)
	}
	decode("job list filtered", runCLI(t, env, "", "job", "list", "--type", "scheduleUpdateTwin", "--status", "completed"), &jobs)
	if len(jobs) != 1 || jobs[0].JobID != "twin-1" {
		t.Errorf("job list --type --status: got %+v", jobs)
	}

	res = runCLI(t, env, "", "job", "show", "nope")
	if res.code != exitError || !strings.Contains(res.stderr, "JobNotFound") {
		t.Errorf("job show unknown: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, env, "", "job", "create", "twin-1", "--type", "scheduleUpdateTwin", "--query", "*", "--patch", `{"tags":{}}`)
	if res.code != exitError || !strings.Contains(res.stderr, "409") {
		t.Errorf("duplicate job id: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestJobUsageErrors: command lines that cannot work stop before any
// request.
func TestJobUsageErrors(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	env := envFor(h)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"job"}, "job needs a subcommand"},
		{"no id", []string{"job", "show"}, "want exactly one job id"},
		{"no query", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--patch", "{}"}, "needs --query"},
		{"no type", []string{"job", "create", "j", "--query", "*"}, "--type must be"},
		{"twin without patch", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--query", "*"}, "needs --patch"},
		{"twin with a method name", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--query", "*", "--patch", "{}", "--name", "m"}, "takes no --name"},
		{"method without name", []string{"job", "create", "j", "--type", "scheduleDeviceMethod", "--query", "*"}, "needs --name"},
		{"desired outside properties", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--query", "*", "--patch", `{"desired":{"a":1}}`}, `belongs in "properties"`},
		{"bad start", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--query", "*", "--patch", "{}", "--start", "soon"}, "--start"},
		{"bad max execution", []string{"job", "create", "j", "--type", "scheduleUpdateTwin", "--query", "*", "--patch", "{}", "--max-execution", "0s"}, "--max-execution"},
		{"list with arguments", []string{"job", "list", "x"}, "takes no arguments"},
		{"devices with a quote", []string{"job", "devices", "j'"}, "no quotes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, env, "", tt.args...)
			if res.code != exitUsage || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, exitUsage, tt.want)
			}
		})
	}
	if n := len(h.requests()); n != 0 {
		t.Errorf("%d requests made, want none", n)
	}
}

func TestParseStart(t *testing.T) {
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"10m":                  now.Add(10 * time.Minute),
		"-1h":                  now.Add(-time.Hour),
		"2024-05-02T10:00:00Z": time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseStart(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseStart(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
