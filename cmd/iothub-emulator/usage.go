// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	flag "github.com/spf13/pflag"
)

// errVersion is returned by parseFlags for --version.
var errVersion = errors.New("version requested")

const usageHead = `iothub-emulator runs a local Azure IoT Hub: MQTT over TLS on 8883, and HTTPS
(the service REST API, MQTT over WebSockets, /health, /emulator) on 443. It
prints what a client needs (connection string, CA file) when it is ready
and serves until SIGINT or SIGTERM.

Usage:
  iothub-emulator [flags]
  iothub-emulator <command> [flags]

Commands:
`

const usageTail = `
Every flag can also be set through the environment variable named in its
description; a flag on the command line wins.

Exit status: 0 after a clean shutdown, 1 when the start fails (one line on
stderr names the problem and the fix), 2 when the command line is wrong.
Run "iothub-emulator <command> --help" for a command's own flags.
`

// printUsage writes the emulator's help: summary, commands, flags.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, sc := range subcommands {
		fmt.Fprintf(&b, "  %-13s %s\n", sc.name, sc.summary)
	}
	b.WriteString("\nFlags:\n")
	b.WriteString(fs.FlagUsages())
	b.WriteString(usageTail)
	io.WriteString(w, b.String())
}

// commandNames lists the subcommands for an error message.
func commandNames() string {
	names := make([]string, len(subcommands))
	for i, sc := range subcommands {
		names[i] = sc.name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// singleDash refuses "-name" for a long flag: Go's flag package accepts it,
// but here it would read as a cluster of one-letter flags ("-hostname"
// even as -h, the help).
func singleDash(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && fs.Lookup(name) != nil {
			return fmt.Errorf("flag -%s: long flags take two dashes: --%s", name, name)
		}
	}
	return nil
}
