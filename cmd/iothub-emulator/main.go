// SPDX-License-Identifier: MIT

// Command iothub-emulator runs a local Azure IoT Hub.
//
//	go run ./cmd/iothub-emulator            # localhost, MQTT :8883, HTTPS :443
//	iothub-emulator healthcheck             # exit 0 when /health answers 200 (for Docker)
//	iothub-emulator issue-cert azurite      # a certificate for Azurite, signed by the emulator's CA
//	iothub-emulator --help                  # flags, commands, exit codes
//
// Every flag can also be set through the environment variable named in its
// help text; a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/iothubemulator/iothub/internal/buildinfo"
)

// Exit codes, listed in the usage text.
const (
	exitOK    = 0
	exitError = 1 // the start failed, or the health check did
	exitUsage = 2 // the command line was wrong
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, getenv, stdout, stderr)
}

// subcommands are the words that select something other than serving.
var subcommands = []struct {
	name, summary string
	run           func(args []string, getenv func(string) string, stdout, stderr io.Writer) int
}{
	{"healthcheck", "exit 0 when the emulator's /health answers 200 (container health checks)", healthcheck},
	{"issue-cert", "write a server certificate for another service (e.g. Azurite), signed by the emulator's CA", issueCert},
	{"version", "print the module version and VCS revision this binary was built from", version},
}

// runContext runs until ctx ends (a signal, or a test's cancel).
func runContext(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		for _, sc := range subcommands {
			if args[0] == sc.name {
				return sc.run(args[1:], getenv, stdout, stderr)
			}
		}
		if args[0] == "help" {
			args = []string{"--help"}
		}
	}
	cfg, err := parseFlags(args, getenv, stdout)
	if err != nil {
		if errors.Is(err, errHelp) {
			return exitOK
		}
		if errors.Is(err, errVersion) {
			return version(nil, getenv, stdout, stderr)
		}
		fmt.Fprintf(stderr, "iothub-emulator: %v (see iothub-emulator --help)\n", err)
		return exitUsage
	}
	if err := serve(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "iothub-emulator:", err)
		return exitError
	}
	return exitOK
}

func version(args []string, _ func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "--help" || args[0] == "-h" {
			fmt.Fprintln(stdout, "Usage: iothub-emulator version\n\nPrint the module version and VCS revision this binary was built from.")
			return exitOK
		}
		fmt.Fprintf(stderr, "iothub-emulator: version takes no arguments, got %q\n", args[0])
		return exitUsage
	}
	fmt.Fprintln(stdout, buildinfo.Read().Line("iothub-emulator"))
	return exitOK
}
