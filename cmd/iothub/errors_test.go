// SPDX-License-Identifier: MIT

package main

import (
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator"
)

// TestCertificateAdvice runs commands against an emulator whose CA the
// tool does not trust, and expects the error to say what to set.
func TestCertificateAdvice(t *testing.T) {
	srv, env := emulatorEnv(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	other := emulator.RunT(t) // its CA is not srv's
	noCA := map[string]string{"IOTHUB_CONNECTION_STRING": env["IOTHUB_CONNECTION_STRING"]}
	wrongCA := map[string]string{"IOTHUB_CONNECTION_STRING": env["IOTHUB_CONNECTION_STRING"], "IOTHUB_CA_FILE": other.CAFile()}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"service command without a CA file", noCA, []string{"device", "show", "dev1"},
			[]string{"this is the IoT Hub emulator, whose CA is not trusted: set IOTHUB_CA_FILE or pass --ca-file with its ca.pem", "/emulator/ca.pem"}},
		{"service command with another CA", wrongCA, []string{"device", "list"},
			[]string{"the CA file " + other.CAFile() + " (--ca-file or IOTHUB_CA_FILE) does not hold the CA that signed it"}},
		{"enrollment command without a CA file", map[string]string{"IOTHUB_DPS_CONNECTION_STRING": srv.ProvisioningConnectionString()}, []string{"enrollment", "list"},
			[]string{"this is the IoT Hub emulator, whose CA is not trusted: set IOTHUB_CA_FILE or pass --ca-file"}},
		{"device command without a CA file", map[string]string{"IOTHUB_DEVICE_CONNECTION_STRING": mustDeviceCS(t, srv, "dev1")}, []string{"device", "send", "--body", "x"},
			[]string{"this is the IoT Hub emulator, whose CA is not trusted: set IOTHUB_CA_FILE or pass --ca-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code != exitError {
				t.Errorf("exit %d, want %d", res.code, exitError)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr %q lacks %q", res.stderr, w)
				}
			}
			if strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line", res.stderr)
			}
		})
	}
}

func mustDeviceCS(t *testing.T, srv *emulator.Server, id string) string {
	t.Helper()
	cs, err := srv.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
