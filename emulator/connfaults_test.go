// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/testutil"
	"github.com/iothubemulator/iothub/service"
)

// connectNoRetry connects a Go device client that does not reconnect, so
// that the test sees the drop.
func connectNoRetry(t *testing.T, srv *emulator.Server, id string) *device.Client {
	t.Helper()
	cs, err := srv.CreateDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries(), device.WithOperationTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFaultControlRoute: POST /emulator/faults breaks the device's
// connection after the delay and GET /emulator/faults shows the record;
// bad requests get the hub's errors, and the route needs the owner policy.
func TestFaultControlRoute(t *testing.T) {
	srv := emulator.RunT(t)
	srv.SetTime(time.Now())
	rest := newREST(t, srv, srv.ConnectionString())
	c := connectNoRetry(t, srv, "dev1")
	connectNoRetry(t, srv, "dev2")

	status, body := rest.do("POST", "/emulator/faults", map[string]any{
		"deviceId": "dev1", "faultType": "KillTcp", "closeReason": "boom", "delayInSecs": 2, "durationInSecs": 30,
	})
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); status != 200 || err != nil {
		t.Fatalf("POST /emulator/faults: %d %s", status, body)
	}
	if rec["outcome"] != "pending" || rec["source"] != "control" || rec["faultType"] != "KillTcp" || rec["delayInSecs"] != 2.0 || rec["durationInSecs"] != 30.0 {
		t.Fatalf("record: %s", body)
	}
	srv.FastForward(2 * time.Second)
	testutil.Eventually(t, "the device to be disconnected", func() bool { return c.State() == device.StateDisconnected })
	if !srv.IsConnected("dev2", "") {
		t.Fatal("the other device was disconnected")
	}

	var recs []map[string]any
	testutil.Eventually(t, "the fault to be applied", func() bool {
		status, body := rest.do("GET", "/emulator/faults", nil)
		if status != 200 || json.Unmarshal(body, &recs) != nil || len(recs) != 1 {
			t.Fatalf("GET /emulator/faults: %d %s", status, body)
		}
		return recs[0]["outcome"] == "applied"
	})
	conn, _ := recs[0]["connection"].(map[string]any)
	if conn["transport"] != "mqtt" || recs[0]["appliedTime"] == nil || recs[0]["endTime"] == nil {
		t.Fatalf("applied record: %v", recs[0])
	}
	if got := srv.Faults("dev1"); len(got) != 1 || got[0].Outcome != emulator.FaultApplied || got[0].Connection.Transport != "mqtt" ||
		got[0].Duration != 30*time.Second || !got[0].EndTime.Equal(got[0].AppliedTime.Add(30*time.Second)) {
		t.Fatalf("Faults: %+v", got)
	}
	if got := srv.Faults("dev2"); len(got) != 0 {
		t.Fatalf("Faults(dev2): %+v", got)
	}

	// During the duration the hub refuses the device's reconnects.
	if err := c.Connect(context.Background()); err == nil {
		t.Fatal("reconnected during the fault's duration")
	}
	srv.FastForward(30 * time.Second)
	if err := c.Connect(context.Background()); err != nil {
		t.Fatalf("reconnect after the duration: %v", err)
	}
	if got := srv.Faults("dev1")[0].Refused; got != 1 {
		t.Fatalf("Refused = %d, want 1", got)
	}

	bad := []struct {
		name string
		body any
		want int
		code string
	}{
		{"unknown fault type", map[string]any{"deviceId": "dev1", "faultType": "KillEverything"}, 400, "ArgumentInvalid"},
		{"misspelt member", map[string]any{"deviceId": "dev1", "faultType": "KillTcp", "delaySecs": 1}, 400, "ArgumentInvalid"},
		{"negative delay", map[string]any{"deviceId": "dev1", "faultType": "KillTcp", "delayInSecs": -1}, 400, "ArgumentInvalid"},
		{"huge duration", map[string]any{"deviceId": "dev1", "faultType": "KillTcp", "durationInSecs": 1e300}, 400, "ArgumentInvalid"},
		{"no device", map[string]any{"faultType": "KillTcp"}, 400, "ArgumentNull"},
		{"unknown device", map[string]any{"deviceId": "nope", "faultType": "KillTcp"}, 404, "DeviceNotFound"},
		{"not JSON", "KillTcp", 400, "ArgumentInvalid"},
	}
	for _, tt := range bad {
		status, body := rest.do("POST", "/emulator/faults", tt.body)
		if status != tt.want || !strings.Contains(string(body), tt.code) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.want, tt.code)
		}
	}

	// The control surface needs the owner policy.
	if status, _ := newREST(t, srv, srv.PolicyConnectionString("service")).do("GET", "/emulator/faults", nil); status != 401 {
		t.Fatalf("GET /emulator/faults with the service policy: %d, want 401", status)
	}

	// Reset forgets the faults.
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := srv.Faults(""); len(got) != 0 {
		t.Fatalf("Faults after Reset: %+v", got)
	}
}

// TestThrottleSwitch: the throttling switch refuses an even share of the
// chosen operations with the chosen error, through the Go API and the
// control route, and composes with the other reactors.
func TestThrottleSwitch(t *testing.T) {
	srv := emulator.RunT(t)
	svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := srv.SetThrottle(emulator.Throttle{Rate: 0.25, Ops: []emulator.Op{emulator.OpRegistry}}); err != nil {
		t.Fatal(err)
	}
	var got []int
	for i := range 8 {
		_, err := svc.CreateDevice(ctx, &service.Device{DeviceID: "t" + string(rune('a'+i))})
		got = append(got, statusOf(err))
	}
	if want := []int{0, 0, 0, 429, 0, 0, 0, 429}; !equalInts(got, want) {
		t.Fatalf("statuses with rate 0.25: %v, want %v", got, want)
	}
	// Other operations are not throttled.
	if _, err := svc.GetTwin(ctx, "ta"); err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	if th := srv.Throttling(); th.Rate != 0.25 || len(th.Ops) != 1 || th.Err != emulator.ErrThrottled {
		t.Fatalf("Throttling() = %+v", th)
	}

	rest := newREST(t, srv, srv.ConnectionString())
	status, body := rest.do("POST", "/emulator/throttle", map[string]any{"rate": 0.5, "errorCode": "IotHubQuotaExceeded", "operations": []string{"GetTwin"}})
	if status != 200 || !strings.Contains(string(body), `"rate":0.5`) || !strings.Contains(string(body), "IotHubQuotaExceeded") {
		t.Fatalf("POST /emulator/throttle: %d %s", status, body)
	}
	got = got[:0]
	for range 4 {
		status, body := rest.do("GET", "/twins/ta", nil)
		if status == 403 && !strings.Contains(string(body), "IotHubQuotaExceeded") {
			t.Fatalf("throttled GET twin: %s", body)
		}
		got = append(got, status)
	}
	if want := []int{200, 403, 200, 403}; !equalInts(got, want) {
		t.Fatalf("GET twin statuses with rate 0.5: %v, want %v", got, want)
	}
	// The switch replaced the earlier throttle: registry writes pass.
	for i := range 4 {
		if _, err := svc.CreateDevice(ctx, &service.Device{DeviceID: "u" + string(rune('a'+i))}); err != nil {
			t.Fatalf("CreateDevice under the GetTwin throttle: %v", err)
		}
	}
	status, body = rest.do("GET", "/emulator/throttle", nil)
	if status != 200 || !strings.Contains(string(body), `"operations":["GetTwin"]`) {
		t.Fatalf("GET /emulator/throttle: %d %s", status, body)
	}

	// Reset leaves the switch; DELETE turns it off.
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	if srv.Throttling().Rate != 0.5 {
		t.Fatal("Reset turned the throttle off")
	}
	if status, _ := rest.do("DELETE", "/emulator/throttle", nil); status != 204 {
		t.Fatalf("DELETE /emulator/throttle: %d", status)
	}
	if status, body := rest.do("GET", "/emulator/throttle", nil); status != 200 || string(body) != `{"rate":0,"operations":[]}` {
		t.Fatalf("GET after DELETE: %d %s", status, body)
	}

	for _, bad := range []map[string]any{
		{"rate": 2},
		{"rate": -0.1},
		{"rate": 0.5, "errorCode": "ServerError"},
		{"rate": 0.5, "operations": []string{"Everything"}},
		{"rate": 0.5, "ops": []string{"GetTwin"}},
	} {
		if status, body := rest.do("POST", "/emulator/throttle", bad); status != 400 || !strings.Contains(string(body), "ArgumentInvalid") {
			t.Errorf("POST /emulator/throttle %v: %d %s, want 400", bad, status, body)
		}
	}
	if srv.Throttling().Rate != 0 {
		t.Fatal("a refused request changed the throttle")
	}
}

// TestThrottleRefusesConnects: throttling OpConnect refuses MQTT CONNECTs
// (CONNACK 3); ClearReactors takes the throttle away with the others.
func TestThrottleRefusesConnects(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetThrottle(emulator.Throttle{Rate: 1, Ops: []emulator.Op{emulator.OpConnect}}); err != nil {
		t.Fatal(err)
	}
	c, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "CONNACK 3") {
		t.Fatalf("Connect under a connect throttle: %v, want CONNACK 3", err)
	}
	srv.ClearReactors()
	if th := srv.Throttling(); th.Rate != 0 {
		t.Fatalf("Throttling() after ClearReactors = %+v", th)
	}
	if err := c.Connect(context.Background()); err != nil {
		t.Fatalf("Connect after ClearReactors: %v", err)
	}
}

func equalInts(a, b []int) bool { return slices.Equal(a, b) }
