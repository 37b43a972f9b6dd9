// SPDX-License-Identifier: MIT

package iothub_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
	"github.com/iothubemulator/iothub/testcontainers/iothub"
)

// image is the emulator image under test: the one .ci/run builds, or
// IOTHUB_TESTCONTAINERS_IMAGE.
func image() string {
	if img := os.Getenv("IOTHUB_TESTCONTAINERS_IMAGE"); img != "" {
		return img
	}
	return "iothub-emulator:local"
}

// TestRun starts the emulator image and uses it as a test would: the
// service client on the connection string, a device over MQTT and over
// WebSockets on the published ports, all trusting the CA the module read.
func TestRun(t *testing.T) {
	if os.Getenv("IOTHUB_SKIP_DOCKER") == "1" {
		t.Skip("IOTHUB_SKIP_DOCKER=1: the Docker checks are not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := iothub.Run(ctx, image(), testcontainers.WithEnv(map[string]string{"IOTHUB_LOG_LEVEL": "debug"}))
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	if !strings.HasPrefix(ctr.ConnectionString(), "HostName="+ctr.HTTPSHost()+";SharedAccessKeyName=iothubowner;") {
		t.Errorf("connection string %q, want the published HTTPS port", ctr.ConnectionString())
	}
	if !strings.Contains(string(ctr.CAPEM()), "BEGIN CERTIFICATE") {
		t.Errorf("CAPEM %q, want a PEM certificate", ctr.CAPEM())
	}
	svc, err := ctr.Service(service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}

	devConn, err := ctr.DeviceConnectionString(ctx, "thermostat-1")
	if err != nil {
		t.Fatalf("DeviceConnectionString: %v", err)
	}
	again, err := ctr.DeviceConnectionString(ctx, "thermostat-1")
	if err != nil || again != devConn {
		t.Errorf("second DeviceConnectionString = %q, %v; want the same %q", again, err, devConn)
	}
	if cs, _ := sas.ParseConnectionString(devConn); cs.HostName != ctr.MQTTHost() || cs.DeviceID != "thermostat-1" {
		t.Errorf("device connection string %q, want HostName %s", devConn, ctr.MQTTHost())
	}

	for _, ws := range []bool{false, true} {
		cs := devConn
		opts := []device.Option{device.WithRootCAs(ctr.CAPool()), device.WithoutRetries()}
		if ws {
			cs = strings.Replace(devConn, ctr.MQTTHost(), ctr.HTTPSHost(), 1)
			opts = append(opts, device.WithWebSockets())
		}
		d, err := device.NewFromConnectionString(cs, opts...)
		if err != nil {
			t.Fatal(err)
		}
		d.HandleMethod("ping", func(_ context.Context, r *device.MethodRequest) (int, any) { return 200, r.Payload })
		if err := d.Connect(ctx); err != nil {
			t.Fatalf("Connect (websockets %v): %v", ws, err)
		}
		if err := d.SendMessage(ctx, &device.Message{Body: []byte(`{"t":21.5}`)}); err != nil {
			t.Fatalf("SendMessage (websockets %v): %v", ws, err)
		}
		res, err := svc.InvokeMethod(ctx, "thermostat-1", service.MethodCall{Name: "ping", Payload: json.RawMessage(`{"n":1}`)})
		if err != nil || res.Status != 200 || string(res.Payload) != `{"n":1}` {
			t.Errorf("InvokeMethod (websockets %v) = %+v, %v", ws, res, err)
		}
		d.Close()
	}
	msgs, err := svc.ReadTelemetry(ctx, service.TelemetryFilter{DeviceID: "thermostat-1", Wait: 10 * time.Second})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("ReadTelemetry = %d messages, %v; want the 2 sent", len(msgs), err)
	}
}
