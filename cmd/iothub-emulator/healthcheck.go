// SPDX-License-Identifier: MIT

package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	flag "github.com/spf13/pflag"
)

const healthcheckUsage = `Usage: iothub-emulator healthcheck [--wait DURATION] [ADDR]

Exit 0 when the emulator's /health answers 200, 1 otherwise. It exists for
container health checks, since the image has no shell or curl, and for
scripts that must wait for a starting emulator (--wait).

ADDR is the emulator's HTTPS address, host:port (default $IOTHUB_HTTPS_ADDR,
else :443; an empty or wildcard host means 127.0.0.1).

Flags:
`

// healthcheck exits 0 when the emulator's /health answers 200. It exists
// because the container image has no shell or curl.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	help := fs.BoolP("help", "h", false, "show this help")
	wait := fs.Duration("wait", 0, "keep trying for this long until the emulator is healthy (default: one attempt)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "iothub-emulator healthcheck: %v (see iothub-emulator healthcheck --help)\n", err)
		return exitUsage
	}
	if *help {
		io.WriteString(stdout, healthcheckUsage+fs.FlagUsages())
		return exitOK
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "iothub-emulator healthcheck: want at most one address, got %q\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	addr := getenv("IOTHUB_HTTPS_ADDR")
	if fs.NArg() == 1 {
		addr = fs.Arg(0)
	}
	if addr == "" {
		addr = ":443"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "iothub-emulator healthcheck: address %q: %v\n", addr, err)
		return exitUsage
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{
		Timeout: 3 * time.Second,
		// Only liveness is checked here; the certificate is the emulator's own.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	url := "https://" + net.JoinHostPort(host, port) + "/health"
	deadline := time.Now().Add(*wait)
	for {
		err := check(client, url)
		if err == nil {
			return exitOK
		}
		if time.Now().After(deadline) {
			if *wait > 0 {
				fmt.Fprintf(stderr, "iothub-emulator healthcheck: not healthy after %v: %v\n", *wait, err)
			} else {
				fmt.Fprintf(stderr, "iothub-emulator healthcheck: %v\n", err)
			}
			return exitError
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func check(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}
