// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// TestExternalHub drives a hub that is already running, with our Go clients
// and the official Node SDKs, over its real ports: the emulator in docker
// compose (scripts/compose-e2e.sh sets the variables), or a real IoT Hub.
//
//	IOTHUB_E2E_CONNECTION_STRING  service connection string (iothubowner or equivalent)
//	IOTHUB_E2E_CA_FILE            CA to trust (the emulator's ca.pem); empty for a real hub
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

	t.Run("node", func(t *testing.T) {
		nodeDir, node := nodeSDK(t)
		runNodeSuite(t, nodeDir, node, connString, caFile, svc)
	})
}
