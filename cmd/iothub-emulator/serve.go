// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"fmt"
	"io"
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
	// The banner gives the addresses listened on: port 0 picks one.
	var pprofAddr, metricsAddr string
	if c.pprofAddr != "" {
		stopProfiler, bound, err := serveProfiler(c.pprofAddr)
		if err != nil {
			srv.Close()
			return err
		}
		defer stopProfiler()
		pprofAddr = bound
	}
	if c.metricsAddr != "" {
		stopMetrics, bound, err := serveMetrics(c.metricsAddr, srv.MetricsHandler())
		if err != nil {
			srv.Close()
			return err
		}
		defer stopMetrics()
		metricsAddr = bound
	}
	fmt.Fprintf(stdout, "IoT Hub emulator ready in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "  hub host name:      %s\n", srv.HostName())
	fmt.Fprintf(stdout, "  MQTT (TLS):         %s\n", srv.MQTTAddr())
	fmt.Fprintf(stdout, "  HTTPS + MQTT/WSS:   %s\n", srv.HTTPSAddr())
	if a := srv.AMQPAddr(); a != "" {
		fmt.Fprintf(stdout, "  AMQP (TLS):         %s\n", a)
	}
	if a := srv.AMQPPlainAddr(); a != "" {
		fmt.Fprintf(stdout, "  AMQP (plain):       %s\n", a)
	}
	if f := srv.CAFile(); f != "" {
		fmt.Fprintf(stdout, "  CA certificate:     %s\n", f)
	}
	fmt.Fprintf(stdout, "  dashboard:          %s\n", srv.DashboardURL())
	if pprofAddr != "" {
		fmt.Fprintf(stdout, "  profiler:           http://%s/debug/pprof/\n", pprofAddr)
	}
	if metricsAddr != "" {
		fmt.Fprintf(stdout, "  metrics:            http://%s/metrics\n", metricsAddr)
	}
	fmt.Fprintf(stdout, "  provisioning host:  %s (ID scope %s)\n", srv.ProvisioningHost(), srv.IDScope())
	fmt.Fprintf(stdout, "  service connection string (iothubowner):\n    %s\n", srv.ConnectionString())
	if cs := srv.EventHubConnectionString(); cs != "" {
		fmt.Fprintf(stdout, "  Event Hub-compatible endpoint (Event Hubs SDKs, TLS):\n    %s\n", cs)
	}
	if cs := srv.EventHubEmulatorConnectionString(); cs != "" {
		fmt.Fprintf(stdout, "  Event Hub-compatible endpoint (UseDevelopmentEmulator, plain AMQP):\n    %s\n", cs)
	}
	fmt.Fprintf(stdout, "  provisioning service connection string (provisioningserviceowner):\n    %s\n", srv.ProvisioningConnectionString())
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return srv.Close()
}
