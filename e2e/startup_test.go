// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStartupErrors checks that a failed start is a non-zero exit with
// one line that tells a person what is wrong and where, and that it leaves
// the data alone.
func TestStartupErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup prepares the data dir and returns extra flags and the texts
		// the error line must contain.
		setup    func(t *testing.T, dir string) (args, want []string)
		wantCode int
	}{
		{
			name: "HTTPS address in use",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				addr := occupyPort(t)
				return []string{"--https-addr", addr}, []string{addr, "--https-addr", "in use"}
			},
			wantCode: 1,
		},
		{
			name: "MQTT address in use",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				addr := occupyPort(t)
				return []string{"--mqtt-addr", addr}, []string{addr, "--mqtt-addr", "in use"}
			},
			wantCode: 1,
		},
		{
			name: "database file is not a database",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				path := filepath.Join(dir, "iothub.db")
				writeFile(t, path, bytes.Repeat([]byte("not a database "), 2000))
				keepUnchanged(t, path)
				return nil, []string{"corrupt", path}
			},
			wantCode: 1,
		},
		{
			name: "database with both meta pages destroyed",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				// A real database first, so only the damage is wrong.
				p := startEmulator(t, procConfig{dataDir: dir})
				p.stop(t)
				path := filepath.Join(dir, "iothub.db")
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				// bbolt keeps its two meta pages in the first two pages;
				// 16 KiB covers them for any page size up to 8 KiB.
				for i := 0; i < len(b) && i < 16<<10; i++ {
					b[i] = 0xA5
				}
				writeFile(t, path, b)
				keepUnchanged(t, path)
				return nil, []string{"corrupt", path}
			},
			wantCode: 1,
		},
		{
			name: "config file is not JSON",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				path := filepath.Join(t.TempDir(), "hub-config.json")
				writeFile(t, path, []byte(`{"devices": [`))
				return []string{"--config", path}, []string{path}
			},
			wantCode: 1,
		},
		{
			name: "config file with an unknown field",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				path := filepath.Join(t.TempDir(), "hub-config.json")
				writeFile(t, path, []byte(`{"device": [{"deviceId": "dev1"}]}`))
				return []string{"--config", path}, []string{path, "device"}
			},
			wantCode: 1,
		},
		{
			name: "config file missing",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				path := filepath.Join(t.TempDir(), "no-such-config.json")
				return []string{"--config", path}, []string{path}
			},
			wantCode: 1,
		},
		{
			name: "data dir held by a running emulator",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				startEmulator(t, procConfig{dataDir: dir})
				return nil, []string{"locked", filepath.Join(dir, "iothub.db")}
			},
			wantCode: 1,
		},
		{
			name: "damaged ca.pem",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				p := startEmulator(t, procConfig{dataDir: dir})
				p.stop(t)
				path := filepath.Join(dir, "ca.pem")
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, path, b[:len(b)/2]) // cut short, as by a failed copy
				keepUnchanged(t, path)
				return nil, []string{path, "damaged", "restore it, or delete ca.pem and ca-key.pem"}
			},
			wantCode: 1,
		},
		{
			name: "bad flag value",
			setup: func(t *testing.T, dir string) ([]string, []string) {
				return []string{"--log-level", "loud"}, []string{"--log-level", "loud"}
			},
			wantCode: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args, want := tt.setup(t, dir)
			p := launch(t, procConfig{dataDir: dir, extraArgs: args})
			// A bound against hangs, not a speed test: the lock wait is 1s.
			code, err := p.wait(exitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("got exit status %d, want %d", code, tt.wantCode)
			}
			if strings.Contains(p.stdout.String(), "ready") {
				t.Errorf("stdout says ready, want nothing of the kind:\n%s", p.stdout.String())
			}
			line := lastLine(p.stderr.String())
			if !strings.HasPrefix(line, "iothub-emulator: ") {
				t.Fatalf("got last stderr line %q, want one line starting with %q", line, "iothub-emulator: ")
			}
			t.Logf("exit %d: %s", code, line)
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not contain %q", line, w)
				}
			}
		})
	}
}

// TestStartupUnwritableDataDir starts the emulator as a user who cannot
// write its data dir (nobody, when the tests run as root) and expects one
// line naming the directory and the ways out.
func TestStartupUnwritableDataDir(t *testing.T) {
	t.Parallel()
	// Directories of our own, readable by nobody: t.TempDir's are not.
	base, err := os.MkdirTemp("", "iothub-e2e-ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	bin := filepath.Join(base, "iothub-emulator")
	b, err := os.ReadFile(emulatorBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, b)
	dataDir := filepath.Join(base, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--data-dir", dataDir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0")
	cmd.Env = hermeticEnv()
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if err := os.Chmod(dataDir, 0o555); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("got %v, want exit status 1; stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	want := "iothub-emulator: data dir " + dataDir + " is not writable by this user (open " + filepath.Join(dataDir, "iothub.db") +
		": permission denied): give the user write access to it, choose another with --data-dir, or keep nothing with --in-memory\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// occupyPort listens on a random loopback port for the rest of the test
// and returns its address.
func occupyPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// keepUnchanged checks at the end of the test that a failed start did not
// touch the file: a damaged database is the user's to inspect or recover.
func keepUnchanged(t *testing.T, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("after the failed start: %v", err)
			return
		}
		if !bytes.Equal(before, after) {
			t.Errorf("the failed start changed %s (%d bytes before, %d after)", path, len(before), len(after))
		}
	})
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
