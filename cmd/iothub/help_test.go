// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/internal/buildinfo"
)

// TestHelp checks that help, for the tool and for each command, goes to
// stdout with exit 0 and shows that command's usage.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"Usage:\n  iothub [flags]", "Available Commands:", "device ", "twin ", "Exit status: 0 success, 1", "--connection-string"}},
		{[]string{"help"}, []string{"Usage:\n  iothub [flags]", "monitor-events"}},
		{[]string{"-h"}, []string{"Usage:\n  iothub [flags]"}},
		{[]string{"--help"}, []string{"Usage:\n  iothub [flags]"}},
		{[]string{"device", "create", "--help"}, []string{"Usage:\n  iothub device create <device-id> [flags]", "--primary-key", "--device-host", "--connection-string"}},
		{[]string{"help", "twin"}, []string{"Usage:\n  iothub twin <command>", "update ", "show "}},
		{[]string{"twin", "--help"}, []string{"Usage:\n  iothub twin <command>"}},
		{[]string{"help", "method", "invoke"}, []string{"iothub method invoke <device-id> --name NAME", "--connect-timeout"}},
		{[]string{"c2d", "send", "-h"}, []string{"It speaks AMQP", "--ack", "--websockets", "--amqp-addr"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			res := runCLI(t, nil, "", tt.args...)
			if res.code != exitOK || res.stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing on stderr", res.code, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, res.stdout)
				}
			}
			if strings.Contains(res.stdout, " -connection-string") {
				t.Errorf("help shows a single-dash flag:\n%s", res.stdout)
			}
		})
	}
}

// TestUsageErrorShowsOnlyThatCommand checks that a usage error names the
// problem, then shows the usage of the command that was wrong (not the
// whole tool's), on stderr with exit 2.
func TestUsageErrorShowsOnlyThatCommand(t *testing.T) {
	tests := []struct {
		args      []string
		wantMsg   string
		wantUsage string
	}{
		{[]string{"device", "create"}, "iothub: device create takes one argument, the device id, got 0 arguments\n", "Usage:\n  iothub device create <device-id> [flags]"},
		{[]string{"twin", "update", "dev1", "--etag"}, "iothub: flag needs an argument: --etag\n", "Usage:\n  iothub twin update <device-id> (--desired JSON | --tags JSON | --patch JSON) [flags]"},
		{[]string{"device", "list", "--top", "many"}, `iothub: invalid argument "many" for "--top" flag`, "Usage:\n  iothub device list [flags]"},
		{[]string{"device"}, "iothub: device needs a subcommand\n", "Usage:\n  iothub device <command>"},
		{[]string{"jobs"}, `iothub: unknown command "jobs" for "iothub"`, "Usage:\n  iothub [flags]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			res := runCLI(t, map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=nowhere.invalid;SharedAccessKeyName=x;SharedAccessKey=" + testKey}, "", tt.args...)
			if res.code != exitUsage || res.stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing on stdout", res.code, res.stdout, exitUsage)
			}
			if !strings.HasPrefix(res.stderr, tt.wantMsg) {
				t.Errorf("stderr starts %q, want %q", firstLine(res.stderr), tt.wantMsg)
			}
			if !strings.Contains(res.stderr, tt.wantUsage) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantUsage, res.stderr)
			}
			if len(tt.args) > 1 && strings.Contains(res.stderr, "monitor-events") {
				t.Errorf("a subcommand's usage error lists the whole tool:\n%s", res.stderr)
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestVersion checks both spellings against the test binary's own build
// information.
func TestVersion(t *testing.T) {
	want := "iothub " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		res := runCLI(t, nil, "", args...)
		if res.code != exitOK || res.stdout != want {
			t.Errorf("%v: exit %d, stdout %q; want 0 and %q", args, res.code, res.stdout, want)
		}
	}
}

// TestVersionNamesTheRevision builds the binary in a clone of this
// checkout with VCS stamping and checks that --version and version print
// the cloned revision. (A clone, because Go stamps nothing in a git
// worktree, whose .git is a file.)
func TestVersionNamesTheRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds the binary")
	}
	bin := buildFromClone(t, "./cmd/iothub")
	rev := gitOutput(t, filepath.Dir(bin), "rev-parse", "HEAD")
	for _, arg := range []string{"--version", "version"} {
		got, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !strings.HasPrefix(string(got), "iothub ") || !strings.Contains(string(got), "revision "+rev[:12]) {
			t.Errorf("%s printed %q, want the revision %s", arg, got, rev[:12])
		}
	}
}

// buildFromClone clones the repository holding the working directory and
// builds pkg there with VCS stamping. The binary sits in the clone's root.
func buildFromClone(t *testing.T, pkg string) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): no revision to compare with", err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "--quiet", "--no-hardlinks", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	bin := filepath.Join(clone, "bin.exe")
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestOutputTSV checks --output tsv on a single result, an array and a
// result with nested values, against a fake hub.
func TestOutputTSV(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/devices/dev1":
			io.WriteString(w, createdDevice)
		case "/devices/query":
			io.WriteString(w, `[{"deviceId":"a","n":1,"tags":{"x":"y"},"v":null},{"deviceId":"b","n":2.5,"tags":{},"v":true}]`)
		}
	})
	res := runCLI(t, envFor(h), "", "device", "connection-string", "show", "dev1", "-o", "tsv")
	if res.code != exitOK || res.stdout != "HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey=cGs=\n" {
		t.Errorf("connection-string show -o tsv: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, envFor(h), "", "--output", "tsv", "query", "SELECT * FROM devices")
	if want := "a\t1\t{\"x\":\"y\"}\t\nb\t2.5\t{}\ttrue\n"; res.code != exitOK || res.stdout != want {
		t.Errorf("query -o tsv: exit %d, stdout %q, want %q (stderr %q)", res.code, res.stdout, want, res.stderr)
	}
	res = runCLI(t, envFor(h), "", "device", "show", "dev1", "-o", "yaml")
	if res.code != exitUsage || !strings.Contains(res.stderr, "--output must be json or tsv") {
		t.Errorf("-o yaml: exit %d, stderr %q", res.code, res.stderr)
	}
}
