// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/emulator/internal/certs"
)

// TestCASignedDeviceFromConfig declares a device CA in the config file and
// a certificateAuthority device, then connects that device with a
// certificate the CA issued, over MQTT/TLS and over WebSockets; a
// certificate from another CA is refused.
func TestCASignedDeviceFromConfig(t *testing.T) {
	now := time.Now()
	ca, err := certs.NewCA("fleet CA", now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet-ca.pem"), ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	cfg := `{"certificateAuthorities": ["fleet-ca.pem"], "devices": [{"deviceId": "cam-1", "certificateAuthority": true}]}`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := emulator.LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := emulator.RunT(t, emulator.WithConfig(c))
	good, err := ca.Issue("cam-1", now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := certs.NewCA("rogue CA", now)
	bad, _ := other.Issue("cam-1", now)

	_, mqttPort, _ := net.SplitHostPort(srv.MQTTAddr())
	for _, tr := range []struct {
		name string
		host string
		opts []device.Option
	}{
		{"mqtt", "localhost:" + mqttPort, nil},
		{"mqtt-ws", srv.WebSocketHost(), []device.Option{device.WithWebSockets()}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			opts := append([]device.Option{device.WithRootCAs(srv.CAPool()), device.WithoutRetries()}, tr.opts...)
			dc, err := device.NewFromX509(tr.host, "cam-1", "", good, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := dc.Connect(ctx); err != nil {
				t.Fatalf("CA-signed device refused: %v", err)
			}
			if err := dc.SendMessage(ctx, &device.Message{Body: []byte("hi")}); err != nil {
				t.Fatal(err)
			}
			ms, err := srv.WaitMessages("cam-1", 1, 5*time.Second)
			if err != nil || ms[len(ms)-1].AuthMethod != "x509" {
				t.Fatalf("recorded %v, %v; want a message with auth method x509", ms, err)
			}
			dc.Close()
			rogue, _ := device.NewFromX509(tr.host, "cam-1", "", bad, opts...)
			if err := rogue.Connect(ctx); err == nil {
				rogue.Close()
				t.Fatal("a certificate from an unknown CA was accepted")
			}
		})
	}
}
