// SPDX-License-Identifier: MIT

package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
)

// restClient calls the emulator's REST API with a policy SAS, as a service would.
type restClient struct {
	t    *testing.T
	http *http.Client
	cs   sas.ConnectionString
}

func newREST(t *testing.T, srv *emulator.Server, connString string) *restClient {
	t.Helper()
	cs, err := sas.ParseConnectionString(connString)
	if err != nil {
		t.Fatalf("parse connection string: %v", err)
	}
	return &restClient{t: t, cs: cs, http: &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}, Timeout: 10 * time.Second}}
}

func (c *restClient) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+c.cs.HostName+path+"?api-version=2021-04-12", rd)
	tok, err := sas.NewToken(sas.ResourceURI(c.cs.HostName, "", ""), c.cs.SharedAccessKeyName, c.cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestRunTServesHealthAndRegistry(t *testing.T) {
	srv := emulator.RunT(t)
	if !srv.Ready() {
		t.Fatal("server not ready after RunT")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}}
	resp, err := hc.Get("https://" + srv.HTTPSAddr() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health: got %d, want 200", resp.StatusCode)
	}
	devConn, err := srv.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	dcs, err := sas.ParseConnectionString(devConn)
	if err != nil {
		t.Fatalf("device connection string %q: %v", devConn, err)
	}
	if dcs.DeviceID != "dev1" || dcs.SharedAccessKey == "" || !strings.HasSuffix(dcs.HostName, ":"+portOf(srv.MQTTAddr())) {
		t.Fatalf("device connection string %q does not name dev1, a key and the MQTT port", devConn)
	}
	c := newREST(t, srv, srv.ConnectionString())
	code, body := c.do("GET", "/devices/dev1", nil)
	if code != 200 || !bytes.Contains(body, []byte(`"deviceId":"dev1"`)) {
		t.Fatalf("GET /devices/dev1: got %d %s", code, body)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestWellKnownConnectionString(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	if cs.SharedAccessKeyName != "iothubowner" || cs.SharedAccessKey != emulator.WellKnownOwnerKey {
		t.Fatalf("got policy %s key %s, want iothubowner with the well-known key", cs.SharedAccessKeyName, cs.SharedAccessKey)
	}
}

func TestConfigFileApplied(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	cfg := `{
	  "policies": [{"name": "ci", "primaryKey": "` + key + `", "rights": ["RegistryRead", "ServiceConnect"]}],
	  "devices": [
	    {"deviceId": "sensor-1", "primaryKey": "` + key + `", "tags": {"site": "B7"}, "desired": {"fan": 3}},
	    {"deviceId": "off", "status": "disabled"}
	  ]
	}`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := emulator.LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := emulator.RunT(t, emulator.WithConfig(c))
	d, err := srv.Device("sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Auth.PrimaryKey != key {
		t.Fatalf("sensor-1 primary key: got %s, want %s", d.Auth.PrimaryKey, key)
	}
	if off, err := srv.Device("off"); err != nil || !off.Disabled {
		t.Fatalf("device off: got %+v, %v; want disabled", off, err)
	}
	tw, err := srv.Twin("sensor-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var twin struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	json.Unmarshal(tw, &twin)
	if twin.Tags["site"] != "B7" || twin.Properties.Desired["fan"] != float64(3) {
		t.Fatalf("twin of sensor-1 lacks the configured tags/desired: %s", tw)
	}
	ci := newREST(t, srv, srv.PolicyConnectionString("ci"))
	if code, body := ci.do("GET", "/twins/sensor-1", nil); code != 200 {
		t.Fatalf("custom policy GET twin: got %d %s", code, body)
	}
	if code, _ := ci.do("DELETE", "/devices/sensor-1", nil); code != 401 {
		t.Fatalf("custom policy without RegistryWrite deleting a device: got %d, want 401", code)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"not json", `{`, "config file"},
		{"unknown field", `{"devicez": []}`, "unknown field"},
		{"bad right", `{"policies":[{"name":"p","primaryKey":"MDEyMzQ1Njc4OWFiY2RlZg==","rights":["Everything"]}]}`, "unknown permission"},
		{"bad device id", `{"devices":[{"deviceId":"a b"}]}`, "devices[0]"},
		{"duplicate device", `{"devices":[{"deviceId":"a"},{"deviceId":"a"}]}`, "declared twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			os.WriteFile(p, []byte(tc.body), 0o600)
			_, err := emulator.LoadConfigFile(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) && tc.name != "unknown field" {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, p, tc.want)
			}
		})
	}
}

func TestRestartKeepsDevicesAndTwins(t *testing.T) {
	dir := t.TempDir()
	start := func() *emulator.Server {
		s, err := emulator.New(emulator.Options{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	if _, err := s.CreateDevice("keep"); err != nil {
		t.Fatal(err)
	}
	c := newREST(t, s, s.ConnectionString())
	if code, body := c.do("PATCH", "/twins/keep", map[string]any{"tags": map[string]any{"a": 1}}); code != 200 {
		t.Fatalf("PATCH twin: %d %s", code, body)
	}
	before, _ := s.Twin("keep", "")
	d1, _ := s.Device("keep")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = start()
	defer s.Close()
	after, err := s.Twin("keep", "")
	if err != nil {
		t.Fatalf("twin after restart: %v", err)
	}
	d2, _ := s.Device("keep")
	if !bytes.Equal(before, after) {
		t.Fatalf("twin changed across restart:\nbefore %s\nafter  %s", before, after)
	}
	if d1.Auth.PrimaryKey != d2.Auth.PrimaryKey || d1.ETag != d2.ETag {
		t.Fatal("device identity changed across restart")
	}
}

func TestStartErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := emulator.New(emulator.Options{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: l.Addr().String(), AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start()
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--https-addr") {
		t.Fatalf("got %v, want an 'already in use' error naming --https-addr", err)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("errors.Is(%v, EADDRINUSE) is false; the cause must stay wrapped", err)
	}
	s2, err := emulator.New(emulator.Options{DataDir: t.TempDir(), MQTTAddr: l.Addr().String(), HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Start(); err == nil || !strings.Contains(err.Error(), "--mqtt-addr") {
		t.Fatalf("got %v, want an error naming --mqtt-addr", err)
	}
	for _, tc := range []struct {
		opts emulator.Options
		flag string
	}{
		{emulator.Options{AMQPAddr: l.Addr().String(), AMQPPlainAddr: "127.0.0.1:0"}, "--amqp-addr"},
		{emulator.Options{AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: l.Addr().String()}, "--amqp-plain-addr"},
	} {
		o := tc.opts
		o.DataDir, o.MQTTAddr, o.HTTPSAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
		s, err := emulator.New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Start(); err == nil || !strings.Contains(err.Error(), tc.flag) || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("got %v, want an 'already in use' error naming %s", err, tc.flag)
		}
	}
}

func TestInMemoryLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := emulator.New(emulator.Options{InMemory: true, DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice("tmp"); err != nil {
		t.Fatal(err)
	}
	ca := s.CAFile()
	s.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("in-memory emulator wrote into the data dir: %v", entries)
	}
	if _, err := os.Stat(ca); !os.IsNotExist(err) {
		t.Fatalf("in-memory emulator left its CA at %s", ca)
	}
}

func TestResetEmptiesTheHub(t *testing.T) {
	srv := emulator.RunT(t)
	srv.CreateDevice("a")
	c := newREST(t, srv, srv.ConnectionString())
	if code, body := c.do("POST", "/emulator/reset", nil); code != 204 {
		t.Fatalf("POST /emulator/reset: %d %s", code, body)
	}
	if code, _ := c.do("GET", "/devices/a", nil); code != 404 {
		t.Fatalf("device a after reset: got %d, want 404", code)
	}
	svc := newREST(t, srv, srv.PolicyConnectionString("service"))
	if code, _ := svc.do("POST", "/emulator/reset", nil); code != 401 {
		t.Fatalf("reset with the service policy: got %d, want 401 (owner only)", code)
	}
}

func TestFailNextInjectsHubErrors(t *testing.T) {
	srv := emulator.RunT(t)
	srv.CreateDevice("f")
	srv.FailNext(emulator.OpGetTwin, 1, emulator.ErrThrottled)
	c := newREST(t, srv, srv.ConnectionString())
	code, body := c.do("GET", "/twins/f", nil)
	if code != 429 || !bytes.Contains(body, []byte("ThrottlingException")) {
		t.Fatalf("first GET twin: got %d %s, want 429 ThrottlingException", code, body)
	}
	if code, _ := c.do("GET", "/twins/f", nil); code != 200 {
		t.Fatalf("second GET twin: got %d, want 200", code)
	}
	_ = context.Background()
}

// TestShippedConfigExamples keeps the example config files in testdata
// (documented in the README, used by docker compose) valid.
func TestShippedConfigExamples(t *testing.T) {
	for _, f := range []string{"../testdata/config.json", "../testdata/compose-config.json"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := emulator.LoadConfigFile(f)
			if err != nil {
				t.Fatal(err)
			}
			srv := emulator.RunT(t, emulator.WithConfig(c))
			for _, d := range c.Devices {
				got, err := srv.Device(d.DeviceID)
				if err != nil {
					t.Fatalf("device %s from %s: %v", d.DeviceID, f, err)
				}
				if d.PrimaryKey != "" && got.Auth.PrimaryKey != d.PrimaryKey {
					t.Fatalf("device %s: key not applied", d.DeviceID)
				}
			}
			for _, e := range c.Enrollments {
				out, err := srv.Enrollment(e.RegistrationID)
				if err != nil || (e.PrimaryKey != "" && !bytes.Contains(out, []byte(`"primaryKey":"`+e.PrimaryKey+`"`))) {
					t.Fatalf("enrollment %s from %s: %s, %v", e.RegistrationID, f, out, err)
				}
			}
		})
	}
}
