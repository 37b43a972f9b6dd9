// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/buildinfo"
)

// runCmd runs the command line in process and returns its exit code and
// output. Nothing here serves, so a cancelled context is enough.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code = runContext(ctx, args, env(nil), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelp checks that --help (and help, -h) print a summary, the
// commands and every flag in double-dash form, to stdout, with exit 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--in-memory", "--help"}} {
		code, out, errOut := runCmd(t, args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing on stderr", args, code, errOut)
		}
		for _, want := range []string{
			"iothub-emulator runs a local Azure IoT Hub",
			"Usage:\n  iothub-emulator [flags]",
			"healthcheck   exit 0 when", "issue-cert    write a server certificate",
			"version       print the module version",
			"--hostname string", "(env IOTHUB_HOSTNAME)", "--https-addr", "--mqtt-addr", "--data-dir", "--version", "-h, --help",
			"Exit status: 0 after a clean shutdown, 1 when the start fails",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %q:\n%s", args, want, out)
			}
		}
		if m := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`).FindString(out); m != "" {
			t.Errorf("%v: help shows a single-dash long flag %q", args, m)
		}
	}
}

func TestIssueCertHelp(t *testing.T) {
	code, out, errOut := runCmd(t, "issue-cert", "--help")
	if code != exitOK || errOut != "" || !strings.Contains(out, "Usage: iothub-emulator issue-cert") || !strings.Contains(out, "--data-dir string") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the issue-cert usage", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "issue-cert", "-out", "x")
	if code != exitUsage || !strings.Contains(errOut, "iothub-emulator issue-cert: ") {
		t.Errorf("single-dash flag: exit %d, stderr %q; want 2", code, errOut)
	}
}

func TestHealthcheckHelp(t *testing.T) {
	code, out, errOut := runCmd(t, "healthcheck", "--help")
	if code != exitOK || errOut != "" || !strings.Contains(out, "Usage: iothub-emulator healthcheck [--wait DURATION] [ADDR]") || !strings.Contains(out, "--wait duration") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the healthcheck usage", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "healthcheck", "--bogus")
	if code != exitUsage || !strings.Contains(errOut, "unknown flag: --bogus") {
		t.Errorf("unknown flag: exit %d, stderr %q; want 2 naming --bogus", code, errOut)
	}
	code, _, errOut = runCmd(t, "healthcheck", "a:1", "b:2")
	if code != exitUsage || !strings.Contains(errOut, "at most one address") {
		t.Errorf("two addresses: exit %d, stderr %q; want 2", code, errOut)
	}
}

// TestHealthcheckWait starts the emulator after a health check with --wait
// has begun, and expects the check to succeed once it is up.
func TestHealthcheckWait(t *testing.T) {
	https := freeAddr(t)
	result := make(chan int, 1)
	var errOut syncBuffer
	go func() { result <- healthcheck([]string{"--wait", "30s", https}, env(nil), io.Discard, &errOut) }()
	time.Sleep(300 * time.Millisecond) // let a few attempts fail first
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	e := env(map[string]string{"IOTHUB_DATA_DIR": t.TempDir(), "IOTHUB_MQTT_ADDR": freeAddr(t), "IOTHUB_HTTPS_ADDR": https})
	go func() { done <- runContext(ctx, []string{"--log-level", "error"}, e, io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()
	select {
	case code := <-result:
		if code != exitOK {
			t.Errorf("healthcheck --wait: exit %d (%s), want 0", code, errOut.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("healthcheck --wait did not return")
	}
	if code := healthcheck([]string{"--wait", "500ms", freeAddr(t)}, env(nil), io.Discard, &errOut); code != exitError || !strings.Contains(errOut.String(), "not healthy after 500ms") {
		t.Errorf("healthcheck --wait on nothing: exit %d, stderr %q; want 1", code, errOut.String())
	}
}

func TestVersion(t *testing.T) {
	want := "iothub-emulator " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runCmd(t, args...)
		if code != exitOK || out != want {
			t.Errorf("%v: exit %d, stdout %q; want 0 and %q", args, code, out, want)
		}
	}
}

// TestVersionNamesTheRevision builds the binary in a clone of this
// checkout with VCS stamping and checks that --version prints the cloned
// revision. (A clone, because Go stamps nothing in a git worktree.)
func TestVersionNamesTheRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds the binary")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): no revision to compare with", err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "--quiet", "--no-hardlinks", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	bin := filepath.Join(clone, "bin.exe")
	build := exec.Command("go", "build", "-o", bin, "./cmd/iothub-emulator")
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	revCmd := exec.Command("git", "rev-parse", "HEAD")
	revCmd.Dir = clone
	rev, err := revCmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "revision " + string(rev[:12]); !strings.HasPrefix(string(got), "iothub-emulator ") || !strings.Contains(string(got), want) {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}
