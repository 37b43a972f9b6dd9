// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

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
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orEnv(getenv, "IOTHUB_DATA_DIR", "./iothub-data"), "directory of the emulator's CA (env IOTHUB_DATA_DIR)")
	out := fs.String("out", ".", "directory to write cert.pem and key.pem to")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: iothub-emulator issue-cert [--data-dir DIR] [--out DIR] host...")
		fmt.Fprintln(stderr, "Writes cert.pem and key.pem for the hosts (plus localhost, 127.0.0.1, ::1), signed by the emulator's CA,")
		fmt.Fprintln(stderr, "for Azurite: azurite-blob --cert cert.pem --key key.pem")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	certFile, keyFile := filepath.Join(*out, "cert.pem"), filepath.Join(*out, "key.pem")
	if err := emulator.IssueServerCertificate(*dataDir, fs.Args(), certFile, keyFile); err != nil {
		fmt.Fprintln(stderr, "iothub-emulator issue-cert:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s, signed by %s\n", certFile, keyFile, filepath.Join(*dataDir, "ca.pem"))
	return 0
}
