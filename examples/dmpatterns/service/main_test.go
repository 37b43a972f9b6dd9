// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// TestOfflineDevice runs the app against the emulator with its device
// registered but not connected: it fails with the hub's DeviceNotOnline and
// says what to do about it.
func TestOfflineDevice(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("myDevice"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IOTHUB_CONNECTION_STRING": srv.ConnectionString(),
		"DEVICE_ID":                "myDevice",
		"IOTHUB_CA_FILE":           srv.CAFile(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"--polls", "1"}, func(k string) string { return env[k] }, &out)
	if !errors.Is(err, service.ErrDeviceNotOnline) || !strings.Contains(err.Error(), "start the device app first") {
		t.Errorf("run = %v, want ErrDeviceNotOnline with a hint", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q before failing, want nothing", out.String())
	}
}
