// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the binary built for this test run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iothub-e2e-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// emulatorBinary returns the path of the iothub-emulator binary, building it
// on first use (once per test run, with -race when the tests have it), or
// IOTHUB_E2E_BINARY when that is set.
func emulatorBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("IOTHUB_E2E_BINARY"); p != "" {
			binPath, buildErr = filepath.Abs(p)
			return
		}
		binPath, buildErr = buildEmulator(filepath.Join(binDir, "iothub-emulator"))
	})
	if buildErr != nil {
		tb.Fatalf("emulator binary: %v", buildErr)
	}
	return binPath
}

func buildEmulator(out string) (string, error) { return buildPackage("./cmd/iothub-emulator", out) }

// buildPackage builds one main package of the module into out.
func buildPackage(pkg, out string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goTool(), append(args, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %v\n%s", strings.Join(cmd.Args[1:], " "), root, err, b)
	}
	return out, nil
}

// moduleRoot finds go.mod above the package directory, where go test runs.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the e2e package directory")
		}
		dir = parent
	}
}

// goTool is the go command of the toolchain running the tests, which may
// not be on PATH when go test was started by its full path.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	//lint:ignore SA1019 the toolchain running this test is the one wanted, even if not on PATH
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
