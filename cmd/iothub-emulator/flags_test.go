// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want emulator.Options
	}{
		{
			name: "defaults",
			want: emulator.Options{HostName: "localhost", MQTTAddr: ":8883", HTTPSAddr: ":443", DataDir: "./iothub-data", OwnerKey: emulator.WellKnownOwnerKey, TelemetryMaxMessages: 100000, TelemetryMaxAge: 24 * time.Hour, TelemetryMaxBytes: 256 << 20, Partitions: 4, MaxConcurrentJobs: 1,
				IDScope: emulator.DefaultIDScope, AMQPAddr: ":5671", AMQPPlainAddr: "127.0.0.1:5672"},
		},
		{
			name: "environment",
			env: map[string]string{"IOTHUB_HOSTNAME": "hub.local", "IOTHUB_TLS_SANS": "iothub, 10.0.0.5", "IOTHUB_MQTT_ADDR": ":1883",
				"IOTHUB_HTTPS_ADDR": ":8443", "IOTHUB_DATA_DIR": "/data", "IOTHUB_OWNER_KEY": "a2V5", "IOTHUB_IN_MEMORY": "true",
				"IOTHUB_TLS_CERT": "c.pem", "IOTHUB_TLS_KEY": "k.pem", "IOTHUB_TELEMETRY_MAX_MESSAGES": "500", "IOTHUB_TELEMETRY_MAX_AGE": "1h", "IOTHUB_PARTITIONS": "2",
				"IOTHUB_TELEMETRY_MAX_BYTES": "3GiB", "IOTHUB_DPS_ID_SCOPE": "0ne0000ABCD",
				"IOTHUB_AMQP_ADDR": ":15671", "IOTHUB_AMQP_PLAIN_ADDR": "off"},
			want: emulator.Options{HostName: "hub.local", TLSSANs: []string{"iothub", "10.0.0.5"}, MQTTAddr: ":1883", HTTPSAddr: ":8443",
				DataDir: "/data", OwnerKey: "a2V5", InMemory: true, TLSCertFile: "c.pem", TLSKeyFile: "k.pem",
				TelemetryMaxMessages: 500, TelemetryMaxAge: time.Hour, TelemetryMaxBytes: 3 << 30, Partitions: 2, MaxConcurrentJobs: 1, IDScope: "0ne0000ABCD",
				AMQPAddr: ":15671", AMQPPlainAddr: "off"},
		},
		{
			name: "file upload",
			args: []string{"--storage-connection-string", "UseDevelopmentStorage=true", "--file-upload-sas-ttl", "2h", "--file-upload-notifications=false"},
			env:  map[string]string{"IOTHUB_FILE_UPLOAD_CONTAINER": "uploads", "IOTHUB_STORAGE_CA_FILE": "azurite-ca.pem"},
			want: emulator.Options{HostName: "localhost", MQTTAddr: ":8883", HTTPSAddr: ":443", DataDir: "./iothub-data", OwnerKey: emulator.WellKnownOwnerKey,
				TelemetryMaxMessages: 100000, TelemetryMaxAge: 24 * time.Hour, TelemetryMaxBytes: 256 << 20, Partitions: 4, MaxConcurrentJobs: 1, StorageConnectionString: "UseDevelopmentStorage=true",
				StorageCAFile: "azurite-ca.pem", FileUploadContainer: "uploads", FileUploadSASTTL: 2 * time.Hour, DisableFileUploadNotifications: true, IDScope: emulator.DefaultIDScope,
				AMQPAddr: ":5671", AMQPPlainAddr: "127.0.0.1:5672"},
		},
		{
			name: "flag wins over environment",
			args: []string{"--hostname", "flag.local", "--https-addr=127.0.0.1:9443", "--in-memory=false", "--dps-id-scope", "0neFLAG0001"},
			env:  map[string]string{"IOTHUB_HOSTNAME": "env.local", "IOTHUB_HTTPS_ADDR": ":1", "IOTHUB_IN_MEMORY": "1", "IOTHUB_DPS_ID_SCOPE": "0neENV00001"},
			want: emulator.Options{HostName: "flag.local", MQTTAddr: ":8883", HTTPSAddr: "127.0.0.1:9443", DataDir: "./iothub-data", OwnerKey: emulator.WellKnownOwnerKey, TelemetryMaxMessages: 100000, TelemetryMaxAge: 24 * time.Hour, TelemetryMaxBytes: 256 << 20, Partitions: 4, MaxConcurrentJobs: 1,
				IDScope: "0neFLAG0001", AMQPAddr: ":5671", AMQPPlainAddr: "127.0.0.1:5672"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			c.opts.Logger = nil
			if diff := cmp.Diff(tc.want, c.opts, cmp.AllowUnexported(emulator.Config{})); diff != "" {
				t.Fatalf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "unknown flag: --nope"},
		{"stray argument", []string{"serve"}, `unknown command "serve": the commands are healthcheck, issue-cert and version`},
		{"single-dash long flag", []string{"-hostname", "x"}, "long flags take two dashes: --hostname"},
		{"bad boolean", []string{"--in-memory=maybe"}, `invalid argument "maybe" for "--in-memory" flag`},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"bad retention count", []string{"--telemetry-max-messages", "0"}, "--telemetry-max-messages"},
		{"bad retention age", []string{"--telemetry-max-age", "soon"}, "--telemetry-max-age"},
		{"no partitions", []string{"--partitions", "0"}, "--partitions"},
		{"too many partitions", []string{"--partitions", "33"}, "--partitions"},
		{"bad retention size", []string{"--telemetry-max-bytes", "lots"}, "--telemetry-max-bytes"},
		{"zero retention size", []string{"--telemetry-max-bytes", "0MiB"}, "--telemetry-max-bytes"},
		{"overflowing retention size", []string{"--telemetry-max-bytes", "9999999999999GiB"}, "--telemetry-max-bytes"},
		{"bad SAS lifetime", []string{"--file-upload-sas-ttl", "48h"}, "--file-upload-sas-ttl"},
		{"bad notifications switch", []string{"--file-upload-notifications", "maybe"}, "--file-upload-notifications"},
		{"metrics beyond loopback", []string{"--metrics-addr", "0.0.0.0:9464"}, "--metrics-addr"},
		{"profiler beyond loopback", []string{"--pprof-addr", ":6060"}, "--pprof-addr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunPrintsWhatAUserNeeds starts the command in-process and checks the
// ready banner and the healthcheck subcommand against it.
func TestRunPrintsWhatAUserNeeds(t *testing.T) {
	https := freeAddr(t)
	var out syncBuffer
	done := make(chan int, 1)
	amqpAddr, plainAddr := freeAddr(t), freeAddr(t)
	// Port 0 for the metrics and the profiler: the banner says which.
	e := env(map[string]string{"IOTHUB_DATA_DIR": t.TempDir(), "IOTHUB_MQTT_ADDR": freeAddr(t), "IOTHUB_HTTPS_ADDR": https,
		"IOTHUB_AMQP_ADDR": amqpAddr, "IOTHUB_AMQP_PLAIN_ADDR": plainAddr, "IOTHUB_METRICS_ADDR": "127.0.0.1:0", "IOTHUB_PPROF_ADDR": "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- runContext(ctx, []string{"--log-level", "error"}, e, &out, io.Discard) }()
	deadline := time.Now().Add(10 * time.Second)
	// The provisioning service's connection string is the banner's last line.
	for !strings.Contains(out.String(), "SharedAccessKeyName=provisioningserviceowner") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready banner within 10s; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, httpsPort, _ := net.SplitHostPort(https)
	_, amqpPort, _ := net.SplitHostPort(amqpAddr)
	_, plainPort, _ := net.SplitHostPort(plainAddr)
	for _, want := range []string{"ready", "hub host name:      localhost", "MQTT (TLS):", "AMQP (TLS):", "AMQP (plain):", "CA certificate:", "SharedAccessKey=" + emulator.WellKnownOwnerKey,
		"provisioning host:  localhost:" + httpsPort + " (ID scope " + emulator.DefaultIDScope + ")",
		"HostName=localhost:" + httpsPort + ";SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" + emulator.WellKnownProvisioningKey,
		"Endpoint=sb://localhost:" + amqpPort + "/;SharedAccessKeyName=iothubowner;SharedAccessKey=" + emulator.WellKnownOwnerKey + ";EntityPath=localhost\n",
		"Endpoint=sb://localhost:" + plainPort + "/;SharedAccessKeyName=iothubowner;SharedAccessKey=" + emulator.WellKnownOwnerKey + ";EntityPath=localhost;UseDevelopmentEmulator=true\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	bannerURL := func(label string) string {
		for l := range strings.Lines(out.String()) {
			if u, ok := strings.CutPrefix(strings.TrimSpace(l), label); ok {
				u = strings.TrimSpace(u)
				if strings.Contains(u, ":0/") {
					t.Errorf("banner gives %s for %s, not the port listened on", u, label)
				}
				return u
			}
		}
		t.Fatalf("banner lacks %q:\n%s", label, out.String())
		return ""
	}
	if res, err := http.Get(bannerURL("profiler:") + "cmdline"); err != nil {
		t.Error(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusOK {
		t.Errorf("the profiler's address: %s", res.Status)
	}
	res, err := http.Get(bannerURL("metrics:"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "iothub_store_commit_seconds_bucket") {
		t.Errorf("GET /metrics on --metrics-addr: %s\n%s", res.Status, b)
	}
	if code := healthcheck([]string{https}, env(nil), io.Discard, io.Discard); code != 0 {
		t.Errorf("healthcheck against a running emulator: exit %d, want 0", code)
	}
	if code := healthcheck([]string{freeAddr(t)}, env(nil), io.Discard, io.Discard); code != 1 {
		t.Errorf("healthcheck against nothing: exit %d, want 1", code)
	}
	cancel() // what SIGTERM does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code after shutdown: got %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no clean exit within 10s of the shutdown signal")
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Errorf("no shutdown line in output:\n%s", out.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", time.Minute: "1m", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1.5s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestIssueCert(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"issue-cert", "--data-dir", dir, "--out", out, "azurite"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "azurite"}); err != nil {
		t.Fatalf("the certificate does not chain to the emulator's CA for azurite: %v", err)
	}
	if code := run([]string{"issue-cert", "--data-dir", dir, "--out", out, "no such/host"}, env(nil), &stdout, &stderr); code != 1 {
		t.Fatalf("a bad host: exit %d", code)
	}
}
