// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"io"
	"path/filepath"

	flag "github.com/spf13/pflag"

	"github.com/iothubemulator/iothub/emulator"
)

// issueCert writes a server certificate signed by the emulator's CA (in
// the data dir, created when missing) for a storage emulator beside the
// hub: clients that trust ca.pem then trust Azurite too, and the hub
// reaches it without --storage-ca-file.
//
//	iothub-emulator issue-cert [--data-dir DIR] [--out DIR] host...
func issueCert(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iothub-emulator issue-cert", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, below
	help := fs.BoolP("help", "h", false, "show this help")
	dataDir := fs.String("data-dir", orEnv(getenv, "IOTHUB_DATA_DIR", "./iothub-data"), "directory of the emulator's CA (env IOTHUB_DATA_DIR)")
	out := fs.String("out", ".", "directory to write cert.pem and key.pem to")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "iothub-emulator issue-cert: %v (see iothub-emulator issue-cert --help)\n", err)
		return exitUsage
	}
	if *help {
		fmt.Fprintln(stdout, "Usage: iothub-emulator issue-cert [--data-dir DIR] [--out DIR] HOST...")
		fmt.Fprintln(stdout, "\nWrite cert.pem and key.pem for the hosts (plus localhost, 127.0.0.1, ::1), signed by the\nemulator's CA, for Azurite: azurite-blob --cert cert.pem --key key.pem\n\nFlags:")
		io.WriteString(stdout, fs.FlagUsages())
		return exitOK
	}
	certFile, keyFile := filepath.Join(*out, "cert.pem"), filepath.Join(*out, "key.pem")
	if err := emulator.IssueServerCertificate(*dataDir, fs.Args(), certFile, keyFile); err != nil {
		fmt.Fprintln(stderr, "iothub-emulator issue-cert:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s, signed by %s\n", certFile, keyFile, filepath.Join(*dataDir, "ca.pem"))
	return 0
}
