// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/fleet"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
	"github.com/iothubemulator/iothub/service"
)

// TestMetrics: GET /metrics on the HTTPS port answers the owner policy only,
// in the Prometheus text format, and counts what devices and the service
// did: connections by transport, telemetry, reported patches, a method
// call, store commits, queries, and the Go runtime's figures.
func TestMetrics(t *testing.T) {
	srv := emulator.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}, Timeout: 30 * time.Second}
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	scrape := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+srv.HTTPSAddr()+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token: %d, want 401", code)
	}
	sc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.TLSConfig().RootCAs))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := fleet.CreateDevices(ctx, sc, fleet.DeviceIDs("m", 3), fleet.AuthSAS, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(fleet.Options{HostName: srv.HostName(), Addr: srv.MQTTAddr(), TLS: srv.TLSConfig(), Devices: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if failed, err := f.Connect(ctx, nil); failed > 0 {
		t.Fatal(err)
	}
	for _, d := range f.Devices() {
		if err := d.Send(ctx, "", []byte(`{"t":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := d.Report(ctx, []byte(`{"fw":"1"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.InvokeMethod(ctx, "m-000001", service.MethodCall{Name: "ping", ResponseTimeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, err := range sc.Query("SELECT * FROM devices", 0).All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
	}
	svcTok, _ := sas.NewToken(sas.ResourceURI(cs.HostName, "", ""), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	code, body := scrape(svcTok)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics as iothubowner: %d %s", code, body)
	}
	for _, want := range []struct {
		metric string
		min    float64
	}{
		{`iothub_connected_devices{transport="mqtt"}`, 3},
		{`iothub_messages_in_total{transport="mqtt"}`, 3},
		{`iothub_messages_out_total{kind="method"}`, 1},
		{`iothub_method_call_seconds_count{result="2xx"}`, 1},
		{`iothub_twin_operations_total{op="patch_reported",result="ok"}`, 3},
		{`iothub_store_commit_seconds_count`, 9},
		{`iothub_store_commit_batch_size_count`, 9},
		{`iothub_query_seconds_count`, 1},
		{`iothub_refused_connections_total`, 0},
		{`go_goroutines`, 1},
		{`process_resident_memory_bytes`, 1},
	} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want.metric) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no %s in:\n%s", want.metric, body)
			continue
		}
		if v, _ := strconv.ParseFloat(m[1], 64); v < want.min {
			t.Errorf("%s = %v, want at least %v", want.metric, v, want.min)
		}
	}
	f.Close()
	gone := regexp.MustCompile(`(?m)^iothub_connected_devices\{transport="mqtt"\} 0$`)
	testutil.Eventually(t, "connected devices back to 0 after the fleet closed", func() bool {
		_, body := scrape(svcTok)
		return gone.MatchString(body)
	})
}
