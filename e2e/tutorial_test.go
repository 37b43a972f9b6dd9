// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/testutil"
	"github.com/iothubemulator/iothub/service"
)

// TestTutorialGoSamples runs the tutorial's two Go sample apps as processes
// against the emulator binary, as a user would, and checks what they print:
// the service shows the device's method response and then the reboot time
// that the device reported.
func TestTutorialGoSamples(t *testing.T) {
	t.Parallel()
	devBin := buildSample(t, "./examples/dmpatterns/device", "dmpatterns-device")
	svcBin := buildSample(t, "./examples/dmpatterns/service", "dmpatterns-service")
	p := startEmulator(t, procConfig{dataDir: t.TempDir()})
	svc := p.serviceClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: "myDevice"})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.mqttAddr)
	devConn, err := service.DeviceConnectionString("localhost:"+port, d)
	if err != nil {
		t.Fatal(err)
	}

	devOut := &safeBuffer{}
	dev := exec.CommandContext(ctx, devBin, "--reboot-delay", "1s")
	dev.Env = append(hermeticEnv(), "IOTHUB_DEVICE_CONNECTION_STRING="+devConn, "IOTHUB_CA_FILE="+p.caFile)
	dev.Stdout, dev.Stderr = devOut, devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dev.Process.Kill(); dev.Wait() }()
	waitFor(t, 20*time.Second, "device app to wait for commands", func() bool {
		return strings.Contains(devOut.String(), "waiting for commands")
	})

	// The device subscribes to methods right after it prints that line; a
	// user starts the service app seconds later. Probe until the hub routes
	// methods to the device, so the test does not depend on that gap.
	waitFor(t, 20*time.Second, "device app to subscribe to methods", func() bool {
		_, err := svc.InvokeMethod(ctx, "myDevice", service.MethodCall{Name: "probe", ResponseTimeout: 5 * time.Second})
		return !errors.Is(err, service.ErrDeviceNotOnline)
	})
	svcCmd := exec.CommandContext(ctx, svcBin, "--polls", "20", "--interval", "250ms")
	svcCmd.Env = append(hermeticEnv(), "IOTHUB_CONNECTION_STRING="+p.connString, "DEVICE_ID=myDevice", "IOTHUB_CA_FILE="+p.caFile)
	out, err := svcCmd.CombinedOutput()
	if err != nil {
		t.Fatalf("service app: %v\n%s\ndevice app:\n%s", err, out, devOut.String())
	}
	for _, want := range []string{
		"Response status          : 200",
		`Response payload         : {"Response":"This is the response from the device"}`,
		"Waiting for device to report last reboot time...",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("service output lacks %q:\n%s", want, out)
		}
	}
	reported := regexp.MustCompile(`rebootTime: (\S+)`).FindStringSubmatch(devOut.String())
	if reported == nil {
		t.Fatalf("device app never reported a reboot time:\n%s", devOut.String())
	}
	if !bytes.Contains(out, []byte("Last reboot time: "+reported[1])) {
		t.Fatalf("service never printed the reported reboot time %s:\n%s", reported[1], out)
	}
	for _, want := range []string{"Rebooting device", "Device rebooted"} {
		if !strings.Contains(devOut.String(), want) {
			t.Errorf("device output lacks %q:\n%s", want, devOut.String())
		}
	}
	// The emulator recorded the call as the tutorial made it: a JSON string payload.
	tw, err := svc.GetTwin(ctx, "myDevice")
	if err != nil {
		t.Fatal(err)
	}
	if raw, ok := tw.Properties.Reported.Get("rebootTime"); !ok || !strings.Contains(string(raw), reported[1]) {
		t.Fatalf("twin reported rebootTime: got %s, want %s", raw, reported[1])
	}
}

// TestTutorialSampleErrors runs the sample apps into failures a user meets
// first: one line each, naming the app once, then the client's own error
// (not "device: device: ..."), which says what to do.
func TestTutorialSampleErrors(t *testing.T) {
	t.Parallel()
	devBin := buildSample(t, "./examples/dmpatterns/device", "dmpatterns-device")
	svcBin := buildSample(t, "./examples/dmpatterns/service", "dmpatterns-service")
	p := startEmulator(t, procConfig{dataDir: t.TempDir()})
	_, port, _ := net.SplitHostPort(p.mqttAddr)
	ghost := "HostName=localhost:" + port + ";DeviceId=ghost;SharedAccessKey=Z2hvc3Qta2V5LTAxMjM0NTY3ODk="
	tests := []struct {
		name string
		bin  string
		env  []string
		want []string
	}{
		{"device not registered", devBin, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + ghost, "IOTHUB_CA_FILE=" + p.caFile},
			[]string{"dmpatterns-device: device: Connect: 401"}},
		{"device without the CA", devBin, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + ghost},
			[]string{"dmpatterns-device: device: connect: ", "whose CA is not trusted", "IOTHUB_CA_FILE"}},
		{"service without the CA", svcBin, []string{"IOTHUB_CONNECTION_STRING=" + p.connString, "DEVICE_ID=myDevice"},
			[]string{"dmpatterns-service: service: ", "whose CA is not trusted", "IOTHUB_CA_FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, tt.bin)
			cmd.Env = append(hermeticEnv(), tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err == nil {
				t.Fatal("the app succeeded")
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 {
				t.Errorf("stderr %q, want one line", line)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q lacks %q", line, w)
				}
			}
			for _, doubled := range []string{" device: device:", " service: service:"} {
				if strings.Contains(" "+line, doubled) {
					t.Errorf("stderr %q has the doubled prefix %q", line, doubled)
				}
			}
		})
	}
}

var sampleMu sync.Mutex

func buildSample(t *testing.T, pkg, name string) string {
	t.Helper()
	sampleMu.Lock()
	defer sampleMu.Unlock()
	out := filepath.Join(binDir, name)
	if _, err := buildPackage(pkg, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.EventuallyWithin(t, d, what, cond)
}

type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
