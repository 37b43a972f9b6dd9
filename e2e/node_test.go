// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/azurite"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// wellKnownConnectionString is the documented out-of-the-box service
// connection string of an emulator on port 443 (emulator.WellKnownOwnerKey).
const wellKnownConnectionString = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE="

// nodeDeviceID is the device the harness registers for the Node tests.
const nodeDeviceID = "node-e2e-device"

// TestNodeSDK runs the official Azure IoT Node.js SDKs (e2e/node) against
// the emulator. They take no port: they dial 8883 (MQTT) and 443 (HTTPS,
// MQTT over WebSockets) and 5671 (AMQP; 5672 for Event Hubs clients in
// UseDevelopmentEmulator mode) on the connection string's host, so this is
// the one test that binds 127.0.0.1:443, :8883, :5671 and :5672. It must
// stay serial (no t.Parallel) and be the only test using those ports.
func TestNodeSDK(t *testing.T) {
	nodeDir, node := nodeSDK(t)

	cfg := procConfig{
		dataDir:   t.TempDir(),
		httpsAddr: "127.0.0.1:443",
		mqttAddr:  "127.0.0.1:8883",
		amqpAddr:  "127.0.0.1:5671",
		amqpPlain: "127.0.0.1:5672",
	}
	// With Azurite on, the hub gets a blob store and the file upload and
	// import/export tests run; without it they skip and say why.
	var st nodeStorage
	if azurite.Enabled() {
		az := azurite.Start(t)
		cfg.extraArgs = append(cfg.extraArgs, "--storage-connection-string", az.ConnectionString, "--storage-ca-file", az.CAFile)
		st = nodeStorage{connectionString: az.ConnectionString, caFile: az.CAFile}
	}
	p := startEmulator(t, cfg)
	if p.connString != wellKnownConnectionString {
		t.Errorf("printed connection string: got %q, want %q", p.connString, wellKnownConnectionString)
	}

	if p.eventHubConnString == "" || p.eventHubDevConnString == "" {
		t.Fatalf("the banner lacks the Event Hub-compatible connection strings:\n%s", p.output())
	}
	runNodeSuite(t, nodeDir, node, p.connString, p.caFile, p.serviceClient(t), st,
		append(provisioningEnv(t, p.provisioningHost, p.idScope, p.provisioningConnString),
			"EVENTHUB_CONNECTION_STRING="+p.eventHubConnString, "EVENTHUB_DEV_CONNECTION_STRING="+p.eventHubDevConnString)...)
	// Even after a failure: the exit status tells whether the emulator
	// shut down cleanly (with -race, 66 means it found a data race).
	p.stop(t)
}

// nodeSDKEnv turns on the tests that run the official Node SDKs. They need
// `npm ci` in e2e/node and the fixed ports 443, 8883, 5671 and 5672 on 127.0.0.1, so a
// plain `go test ./...` skips them; `make test` and CI turn them on.
const nodeSDKEnv = "IOTHUB_E2E_NODE"

// nodeSDK returns the Node test directory and the node binary, skipping
// the test unless nodeSDKEnv is set, and failing it with what to do when
// it is set but Node or the SDKs are missing.
func nodeSDK(t *testing.T) (dir, node string) {
	t.Helper()
	if v := os.Getenv(nodeSDKEnv); v == "" || v == "0" {
		t.Skipf("the official Node SDK tests are off: run `npm ci` in e2e/node, then set %s=1 (make test does); they bind 127.0.0.1:443, :8883, :5671 and :5672", nodeSDKEnv)
	}
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("%s is set but %s/node_modules is missing: run `npm ci` in e2e/node (%v)", nodeSDKEnv, dir, err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s is set but node is not on PATH: install Node.js 20 or later (%v)", nodeSDKEnv, err)
	}
	return dir, node
}

// nodeStorage is the blob store the Node tests read and write (Azurite):
// its connection string as seen from the tests, and the CA its HTTPS
// certificate chains to. Empty: the storage tests skip.
type nodeStorage struct {
	connectionString string
	caFile           string
}

// runNodeSuite registers the Node tests' device through svc and runs
// `node --test` in nodeDir against the hub of connString, with extraEnv
// (provisioningEnv, the Event Hub connection strings) added to the tests'
// environment.
func runNodeSuite(t *testing.T, nodeDir, node, connString, caFile string, svc *service.Client, st nodeStorage, extraEnv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	_ = svc.DeleteDevice(ctx, nodeDeviceID, "")
	d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: nodeDeviceID})
	if err != nil {
		t.Fatalf("CreateDevice(%s): %v", nodeDeviceID, err)
	}
	cs, err := sas.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}
	deviceCS, err := service.DeviceConnectionString(cs.HostName, d)
	if err != nil {
		t.Fatal(err)
	}

	// One test file at a time: the files share DEVICE_ID, and a second
	// connection for one identity closes the first.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-reporter=spec")
	cmd.Dir = nodeDir
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(),
		"IOTHUB_CONNECTION_STRING="+connString,
		"IOTHUB_DEVICE_CONNECTION_STRING="+deviceCS,
		"DEVICE_ID="+nodeDeviceID,
		// The emulator may listen on 127.0.0.1 only; where localhost also
		// resolves to ::1, Node must not try that first.
		"NODE_OPTIONS=--dns-result-order=ipv4first",
		"NO_COLOR=1",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	if st.connectionString != "" {
		cmd.Env = append(cmd.Env, "STORAGE_CONNECTION_STRING="+st.connectionString)
	}
	if cas := trustFile(t, caFile, st.caFile); cas != "" {
		cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+cas)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("node --test in %s: %v\n%s", nodeDir, err, out)
	} else {
		t.Logf("node --test:\n%s", out)
	}
	_ = svc.DeleteDevice(ctx, nodeDeviceID, "")
}

// trustFile returns one PEM file with every CA given (NODE_EXTRA_CA_CERTS
// takes one file): the hub's and storage's.
func trustFile(t *testing.T, files ...string) string {
	t.Helper()
	var pem []byte
	n := 0
	for _, f := range files {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pem = append(append(pem, b...), '\n')
		n++
	}
	switch n {
	case 0:
		return ""
	case 1:
		for _, f := range files {
			if f != "" {
				return f
			}
		}
	}
	out := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(out, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
