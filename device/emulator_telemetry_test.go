// SPDX-License-Identifier: MIT

package device_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// awkwardProperties are application properties whose keys and values need
// percent-encoding in the topic: separators of the property bag, MQTT
// wildcards, '+' (which must not turn into a space), '%', non-ASCII text and
// an empty value.
var awkwardProperties = map[string]string{
	"alert level": "high & low",
	"a=b":         "c=d&e",
	"plus+sign":   "1+1 = 2",
	"percent":     "100% 50%25",
	"path/like?":  "/devices/x?y#z",
	"wild#card+":  "#+",
	"unicode ✓":   "héllo wörld ✓ 温度",
	"empty":       "",
	"quote'(s)!":  "*~'()!",
}

// TestEmulatorTelemetrySystemProperties sends messages with every system property a device
// or module can set and application properties that need encoding; the
// emulator must record them decoded exactly.
func TestEmulatorTelemetrySystemProperties(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		created := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
		expiry := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("CET", 3600))
		tests := []struct {
			name     string
			moduleID string
			msg      *device.Message
			want     *emulator.Message
		}{
			{
				name: "device",
				msg: &device.Message{
					Body: []byte(`{"t":21.5}`), MessageID: "mid 1/ä", CorrelationID: "cid&=+", UserID: "user@example.com",
					ContentType: "application/json", ContentEncoding: "utf-8",
					CreationTime: created, ExpiryTime: expiry, Properties: awkwardProperties,
				},
				want: &emulator.Message{
					Body: []byte(`{"t":21.5}`), MessageID: "mid 1/ä", CorrelationID: "cid&=+", UserID: "user@example.com",
					ContentType: "application/json", ContentEncoding: "utf-8",
					CreationTime: "2024-05-06T07:08:09.123Z", ExpiryTime: "2030-01-02T02:04:05.678Z", Properties: awkwardProperties,
				},
			},
			{
				name:     "module output",
				moduleID: "mod1",
				msg: &device.Message{
					Body: []byte{0, 1, 2, 0xff}, MessageID: "m2", CorrelationID: "c2", UserID: "u2",
					ContentType: "application/octet-stream", ContentEncoding: "binary", OutputName: "out 1",
					CreationTime: created, Properties: map[string]string{"k": "v v"},
				},
				want: &emulator.Message{
					Body: []byte{0, 1, 2, 0xff}, MessageID: "m2", CorrelationID: "c2", UserID: "u2",
					ContentType: "application/octet-stream", ContentEncoding: "binary", OutputName: "out 1",
					CreationTime: "2024-05-06T07:08:09.123Z", Properties: map[string]string{"k": "v v"},
				},
			},
			{
				name: "empty body without properties",
				msg:  &device.Message{},
				want: &emulator.Message{Properties: map[string]string{}},
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				deviceID := fmt.Sprintf("dev%d", i)
				cs := createDevice(t, srv, deviceID)
				if tt.moduleID != "" {
					cs = createModule(t, srv, deviceID, tt.moduleID)
				}
				c := emuClient(t, srv, tr, cs)
				if err := c.Connect(testContext(t)); err != nil {
					t.Fatalf("Connect: %v", err)
				}
				if err := c.SendMessage(testContext(t), tt.msg); err != nil {
					t.Fatalf("SendMessage: %v", err)
				}
				got, err := srv.WaitMessages(deviceID, 1, waitTimeout)
				if err != nil {
					t.Fatal(err)
				}
				want := *tt.want
				want.DeviceID, want.ModuleID, want.AuthMethod, want.Transport = deviceID, tt.moduleID, "sas", tr.recordedTransport()
				opts := []cmp.Option{cmpopts.IgnoreFields(emulator.Message{}, "SequenceNumber", "EnqueuedTime", "Partition"), cmpopts.EquateEmpty()}
				if diff := cmp.Diff([]*emulator.Message{&want}, got, opts...); diff != "" {
					t.Errorf("recorded message mismatch (-want +got):\n%s", diff)
				}
			})
		}
	})
}
