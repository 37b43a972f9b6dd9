// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/storage"
	"github.com/iothubemulator/iothub/service"
)

// TestExternalHub drives a hub that is already running, with our Go clients
// and the official Node SDKs, over its real ports: the emulator in docker
// compose (scripts/compose-e2e.sh sets the variables), or a real IoT Hub.
//
//	IOTHUB_E2E_CONNECTION_STRING  service connection string (iothubowner or equivalent)
//	IOTHUB_E2E_CA_FILE            CA to trust (the emulator's ca.pem); empty for a real hub
//	IOTHUB_E2E_STORAGE_CONNECTION_STRING  the hub's blob store as the tests reach it (compose's Azurite);
//	                              empty: the file upload tests skip
//	IOTHUB_E2E_STORAGE_CA_FILE    CA of that store's HTTPS certificate, when not the hub's
//	IOTHUB_E2E_EVENTHUB_CONNECTION_STRING      the Event Hub-compatible endpoint's connection string (optional)
//	IOTHUB_E2E_EVENTHUB_DEV_CONNECTION_STRING  its UseDevelopmentEmulator=true form (optional)
//	IOTHUB_E2E_TCP_PROXIED        1 when a TCP proxy stands between the tests and the hub (docker's
//	                              userland proxy): a KillTcp fault then reaches clients as a clean close
//
// Without IOTHUB_E2E_CONNECTION_STRING there is no hub to test, and the
// test is skipped.
func TestExternalHub(t *testing.T) {
	connString := os.Getenv("IOTHUB_E2E_CONNECTION_STRING")
	if connString == "" {
		t.Skip("set IOTHUB_E2E_CONNECTION_STRING (and IOTHUB_E2E_CA_FILE for the emulator) to test a running hub")
	}
	caFile := os.Getenv("IOTHUB_E2E_CA_FILE")
	var svcOpts []service.Option
	var devOpts []device.Option
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("%s holds no certificate", caFile)
		}
		svcOpts = append(svcOpts, service.WithRootCAs(pool))
		devOpts = append(devOpts, device.WithRootCAs(pool))
	}
	svc, err := service.NewFromConnectionString(connString, append(svcOpts, service.WithoutRetries())...)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}

	for _, tr := range []struct {
		name string
		opts []device.Option
	}{{"mqtt", nil}, {"mqtt-ws", []device.Option{device.WithWebSockets()}}} {
		t.Run("go-"+tr.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			id := "e2e-external-" + tr.name
			_ = svc.DeleteDevice(ctx, id, "")
			d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.DeleteDevice(context.Background(), id, "")
			devCS, err := service.DeviceConnectionString(cs.HostName, d)
			if err != nil {
				t.Fatal(err)
			}
			dc, err := device.NewFromConnectionString(devCS, append(append([]device.Option{}, devOpts...), tr.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if err := dc.Connect(ctx); err != nil {
				t.Fatalf("device connect over %s: %v", tr.name, err)
			}
			defer dc.Close()
			dc.HandleMethod("rebootDevice", func(ctx context.Context, req *device.MethodRequest) (int, any) {
				return 200, map[string]string{"Response": "rebooting"}
			})
			var res *service.MethodResult
			waitFor(t, 30*time.Second, "the method to reach the device", func() bool {
				res, err = svc.InvokeMethod(ctx, id, service.MethodCall{Name: "rebootDevice", Payload: map[string]string{"method_number": "42"}})
				return err == nil
			})
			if res.Status != 200 || string(res.Payload) != `{"Response":"rebooting"}` {
				t.Fatalf("method result: got %d %s", res.Status, res.Payload)
			}
			now := time.Now().UTC().Format(time.RFC3339)
			if _, err := dc.UpdateReportedProperties(ctx, map[string]any{"rebootTime": now}); err != nil {
				t.Fatal(err)
			}
			tw, err := svc.GetTwin(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tw.Properties.Reported.Get("rebootTime")
			var got string
			json.Unmarshal(raw, &got)
			if got != now {
				t.Fatalf("reported rebootTime through the service: got %q, want %q", got, now)
			}
			if err := dc.SendMessage(ctx, &device.Message{Body: []byte(`{"t":1}`), Properties: map[string]string{"k": "v w"}}); err != nil {
				t.Fatalf("telemetry over %s: %v", tr.name, err)
			}
		})
	}

	// File upload to the hub's blob store, from the host: the SAS the hub
	// signs must work where the device is.
	t.Run("go-upload", func(t *testing.T) {
		storageCS := os.Getenv("IOTHUB_E2E_STORAGE_CONNECTION_STRING")
		if storageCS == "" {
			t.Skip("set IOTHUB_E2E_STORAGE_CONNECTION_STRING (the hub's blob store as this host reaches it) to test file upload")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		id := "e2e-external-upload"
		_ = svc.DeleteDevice(ctx, id, "")
		d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.DeleteDevice(context.Background(), id, "")
		devCS, err := service.DeviceConnectionString(cs.HostName, d)
		if err != nil {
			t.Fatal(err)
		}
		storeCA := os.Getenv("IOTHUB_E2E_STORAGE_CA_FILE")
		if storeCA == "" {
			storeCA = caFile // compose's Azurite has a certificate from the hub's CA
		}
		hc := trustingClient(t, storeCA)
		dc, err := device.NewFromConnectionString(devCS, append(append([]device.Option{}, devOpts...), device.WithStorageHTTPClient(hc))...)
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		body := []byte("uploaded from the host at " + time.Now().UTC().Format(time.RFC3339Nano))
		// The blob store may still be starting.
		waitFor(t, 60*time.Second, "an upload to succeed", func() bool {
			err = dc.UploadToBlob(ctx, "host/report.txt", bytes.NewReader(body), int64(len(body)))
			return err == nil
		})
		r := svc.FileNotificationReceiver()
		defer r.Close()
		for {
			n, err := r.Receive(ctx)
			if err != nil {
				t.Fatalf("no file notification: %v", err)
			}
			if err := r.Complete(ctx, n); err != nil {
				t.Fatal(err)
			}
			if n.DeviceID == id && n.BlobName == id+"/host/report.txt" {
				if n.BlobSizeInBytes != int64(len(body)) {
					t.Errorf("notification says %d bytes, want %d", n.BlobSizeInBytes, len(body))
				}
				break
			}
		}
		got := readBlob(t, ctx, storageCS, hc, "fileupload", id+"/host/report.txt")
		if !bytes.Equal(got, body) {
			t.Fatalf("the blob holds %q, want %q", got, body)
		}
	})

	t.Run("node", func(t *testing.T) {
		nodeDir, node := nodeSDK(t)
		runNodeSuite(t, nodeDir, node, connString, caFile, svc, nodeStorage{
			connectionString: os.Getenv("IOTHUB_E2E_STORAGE_CONNECTION_STRING"),
			caFile:           os.Getenv("IOTHUB_E2E_STORAGE_CA_FILE"),
		}, "EVENTHUB_CONNECTION_STRING="+os.Getenv("IOTHUB_E2E_EVENTHUB_CONNECTION_STRING"),
			"EVENTHUB_DEV_CONNECTION_STRING="+os.Getenv("IOTHUB_E2E_EVENTHUB_DEV_CONNECTION_STRING"))
	})
}

// trustingClient is an HTTP client that trusts the CA in caFile (the
// system roots when empty).
func trustingClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	var pool *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// readBlob reads a blob with a read SAS signed for the account of the
// storage connection string.
func readBlob(t *testing.T, ctx context.Context, connString string, hc *http.Client, container, blob string) []byte {
	t.Helper()
	acct, err := storage.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}
	u := acct.BlobURL(container, blob) + "?" + acct.BlobSAS(container, blob, "r", time.Time{}, time.Now().Add(time.Hour))
	rc, err := (&storage.Client{HTTP: hc}).GetBlob(ctx, u)
	if err != nil {
		t.Fatalf("read %s/%s: %v", container, blob, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
