// SPDX-License-Identifier: MIT

// Command iothub manages an IoT hub (or the emulator) from the command line
// through the service REST API: device and module identities, twins,
// direct methods and queries. Against the emulator only, it also tails
// telemetry (monitor-events) and sends cloud-to-device messages (c2d),
// which a real hub offers over AMQP alone. The enrollment commands manage
// the Device Provisioning Service's enrollments with a provisioning service
// connection string (--dps-connection-string or
// IOTHUB_DPS_CONNECTION_STRING). Output is JSON.
//
// Usage:
//
//	iothub [--connection-string CS] [--ca-file FILE] <command> <subcommand> [flags] [args]
//
// The connection string of a shared access policy comes from
// --connection-string or IOTHUB_CONNECTION_STRING; a PEM file of extra CAs
// to trust (for the emulator's certificate) from --ca-file or
// IOTHUB_CA_FILE. Run "iothub help" for the list of commands and
// "iothub help <command>" for one command.
//
// The commands are built with github.com/spf13/cobra, one file per command
// group (device.go, twin.go, ...). A new group registers itself from its
// own file with addGroup in an init function; a new verb in an existing
// group is one more constructor in that group's list.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&cli{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args with the process environment and
// standard input, writing to stdout and stderr, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return (&cli{getenv: os.Getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}).run(context.Background(), args)
}
