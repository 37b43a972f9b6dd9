// SPDX-License-Identifier: MIT

// Command iothub-emulator runs a local Azure IoT Hub.
//
//	go run ./cmd/iothub-emulator            # localhost, MQTT :8883, HTTPS :443
//	iothub-emulator healthcheck             # exit 0 when /health answers 200 (for Docker)
//	iothub-emulator issue-cert azurite      # a certificate for Azurite, signed by the emulator's CA
//
// Every flag can also be set through the environment variable named in its
// help text; a flag given on the command line wins.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, getenv, stdout, stderr)
}

// runContext runs until ctx ends (a signal, or a test's cancel).
func runContext(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stderr)
	}
	if len(args) > 0 && args[0] == "issue-cert" {
		return issueCert(args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if err == errHelp {
			return 0
		}
		fmt.Fprintln(stderr, "iothub-emulator:", err)
		return 2
	}
	if err := serve(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "iothub-emulator:", err)
		return 1
	}
	return 0
}
