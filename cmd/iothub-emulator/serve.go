// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/iothubemulator/iothub/emulator"
)

// serve runs the emulator until ctx ends, then shuts it down cleanly.
func serve(ctx context.Context, c *config, stdout io.Writer) error {
	if c.configFile != "" {
		cf, err := emulator.LoadConfigFile(c.configFile)
		if err != nil {
			return err
		}
		c.opts.Config = cf
	}
	start := time.Now()
	srv, err := emulator.New(c.opts)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintf(stdout, "IoT Hub emulator ready in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "  hub host name:      %s\n", srv.HostName())
	fmt.Fprintf(stdout, "  MQTT (TLS):         %s\n", srv.MQTTAddr())
	fmt.Fprintf(stdout, "  HTTPS + MQTT/WSS:   %s\n", srv.HTTPSAddr())
	if f := srv.CAFile(); f != "" {
		fmt.Fprintf(stdout, "  CA certificate:     %s\n", f)
	}
	fmt.Fprintf(stdout, "  dashboard:          %s\n", srv.DashboardURL())
	fmt.Fprintf(stdout, "  provisioning host:  %s (ID scope %s)\n", srv.ProvisioningHost(), srv.IDScope())
	fmt.Fprintf(stdout, "  service connection string (iothubowner):\n    %s\n", srv.ConnectionString())
	fmt.Fprintf(stdout, "  provisioning service connection string (provisioningserviceowner):\n    %s\n", srv.ProvisioningConnectionString())
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return srv.Close()
}

// healthcheck exits 0 when the emulator's /health answers 200. It exists
// because the container image has no shell or curl.
func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	addr := getenv("IOTHUB_HTTPS_ADDR")
	if len(args) > 0 {
		addr = args[0]
	}
	if addr == "" {
		addr = ":443"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{
		Timeout: 3 * time.Second,
		// Only liveness is checked here; the certificate is the emulator's own.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/health")
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
