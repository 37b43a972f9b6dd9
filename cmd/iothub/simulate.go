// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/internal/fleet"
	"github.com/iothubemulator/iothub/service"
)

func init() { addGroup((*cli).simulateCommand) }

// simulateFlags are the flags of the simulate command.
type simulateFlags struct {
	n                              int
	prefix, auth, key, mqttHost    string
	sources, msgRate, reportRate   string
	properties                     string
	size, parallel                 int
	create, del, ackDesired, c2d   bool
	persistent                     bool
	duration, progress, keepAlive  time.Duration
	connectTimeout                 time.Duration
	deviceHost                     string
	reconnect                      bool
	summaryFile                    string
	holdAfterConnect, waitForStdin bool
}

func (c *cli) simulateCommand() *cobra.Command {
	f := &simulateFlags{}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Connect a fleet of simulated devices and load the hub (the emulator or a real one)",
		Long: `simulate connects N devices {prefix}-000000... over MQTT, answers their
direct methods, sends telemetry and reported properties at the given rates
over the fleet ("max": each device sends again once acknowledged), prints
progress on stderr and a JSON summary on stdout. --create registers the
devices in bulk (--delete removes them at the end); otherwise they must
exist and share --key, or their keys are read from the registry.`,
		Example: `  iothub simulate --devices 1000 --create --delete --msgs-per-sec 500 --duration 1m`,
		Args:    noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return c.simulate(cmd.Context(), f)
		}),
	}
	fs := cmd.Flags()
	fs.IntVar(&f.n, "devices", 10, "number of simulated devices")
	fs.StringVar(&f.prefix, "prefix", "sim", "device id prefix: {prefix}-000000, {prefix}-000001, ...")
	fs.BoolVar(&f.create, "create", false, "register the devices first (bulk, 100 per request)")
	fs.BoolVar(&f.del, "delete", false, "with --create: delete the devices at the end")
	fs.StringVar(&f.auth, "auth", "sas", "with --create: sas (one shared key) or x509 (a self-signed certificate each)")
	fs.StringVar(&f.key, "key", "", "the devices' symmetric key (default: generated with --create, read from the registry otherwise)")
	fs.StringVar(&f.mqttHost, "mqtt-host", "", "MQTT over TLS host[:port] (default: the hub host on port 8883)")
	fs.StringVar(&f.deviceHost, "device-host", "", "hub host name devices put in SAS tokens and usernames (default: the connection string's, without port)")
	fs.StringVar(&f.sources, "source-addrs", "", "local addresses to connect from, comma-separated or a range 127.0.0.2-127.0.0.9")
	fs.StringVar(&f.msgRate, "msgs-per-sec", "0", "telemetry messages per second over the fleet, or max")
	fs.IntVar(&f.size, "message-size", 256, "telemetry body size in bytes")
	fs.StringVar(&f.properties, "properties", "", "telemetry property bag, URL-encoded (e.g. type=sim)")
	fs.StringVar(&f.reportRate, "reports-per-sec", "0", "reported-property patches per second over the fleet, or max")
	fs.BoolVar(&f.ackDesired, "ack-desired", false, "answer each desired patch with a reported desiredAck")
	fs.BoolVar(&f.c2d, "c2d", false, "subscribe to cloud-to-device messages")
	fs.BoolVar(&f.persistent, "persistent-session", false, "connect with CleanSession=0")
	fs.BoolVar(&f.reconnect, "reconnect", true, "reconnect devices whose connection drops")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "how long to run after connecting (0: until Ctrl-C)")
	fs.DurationVar(&f.progress, "progress", time.Second, "interval of progress lines on stderr (0: none)")
	fs.DurationVar(&f.keepAlive, "keep-alive", 4*time.Minute, "MQTT keep-alive")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 30*time.Second, "per connection attempt")
	fs.IntVar(&f.parallel, "connect-parallel", 32, "connection attempts in flight")
	fs.StringVar(&f.summaryFile, "summary-file", "", "also write the JSON summary to this file")
	fs.BoolVar(&f.holdAfterConnect, "hold", false, "after connecting, keep the devices connected without load until --duration ends")
	fs.BoolVar(&f.waitForStdin, "until-stdin-closes", false, "run until standard input closes (for scripts driving the simulator)")
	return cmd
}

// simulate runs the fleet simulator.
func (c *cli) simulate(ctx context.Context, fl *simulateFlags) error {
	n, prefix, auth, key, mqttHost := fl.n, fl.prefix, fl.auth, fl.key, fl.mqttHost
	sources, msgRate, reportRate, properties := fl.sources, fl.msgRate, fl.reportRate, fl.properties
	size, parallel := fl.size, fl.parallel
	create, del, ackDesired, c2d, persistent := fl.create, fl.del, fl.ackDesired, fl.c2d, fl.persistent
	duration, progress, keepAlive, connectTimeout := fl.duration, fl.progress, fl.keepAlive, fl.connectTimeout
	deviceHost, reconnect, summaryFile := fl.deviceHost, fl.reconnect, fl.summaryFile
	holdAfterConnect, waitForStdin := fl.holdAfterConnect, fl.waitForStdin
	if n <= 0 {
		return usagef("--devices must be positive")
	}
	telemetry, err := parseRate("msgs-per-sec", msgRate)
	if err != nil {
		return err
	}
	reports, err := parseRate("reports-per-sec", reportRate)
	if err != nil {
		return err
	}
	srcs, err := parseSources(sources)
	if err != nil {
		return err
	}
	if auth != string(fleet.AuthSAS) && auth != string(fleet.AuthX509) {
		return usagef("--auth %q: want sas or x509", auth)
	}
	if auth == string(fleet.AuthX509) && !create {
		return usagef("--auth x509 needs --create: the certificates are made for the run")
	}
	client, err := c.service()
	if err != nil {
		return err
	}
	pool, err := c.rootCAs()
	if err != nil {
		return err
	}
	if pool == nil {
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
	}
	if deviceHost == "" {
		deviceHost = stripPort(client.HostName())
	}
	if mqttHost == "" {
		mqttHost = stripPort(client.HostName())
	}
	if _, _, err := net.SplitHostPort(mqttHost); err != nil {
		mqttHost = net.JoinHostPort(mqttHost, "8883")
	}

	ids := fleet.DeviceIDs(prefix, n)
	var creds []fleet.Credential
	switch {
	case create:
		fmt.Fprintf(c.stderr, "registering %d devices...\n", n)
		creds, err = fleet.CreateDevices(ctx, client, ids, fleet.Auth(auth), key, nil)
		if err != nil {
			return err
		}
		if del {
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := fleet.DeleteDevices(ctx, client, ids); err != nil {
					fmt.Fprintf(c.stderr, "deleting the devices: %v\n", err)
				}
			}()
		}
	case key != "":
		for _, id := range ids {
			creds = append(creds, fleet.Credential{DeviceID: id, Key: key})
		}
	default:
		if creds, err = readKeys(ctx, client, ids); err != nil {
			return err
		}
	}
	f, err := fleet.New(fleet.Options{
		HostName: deviceHost, Addr: mqttHost, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Devices: creds, SourceAddrs: srcs, PersistentSession: persistent, C2D: c2d, AckDesired: ackDesired,
		KeepAlive: keepAlive, ConnectTimeout: connectTimeout, ConnectParallel: parallel, Reconnect: reconnect,
	})
	if err != nil {
		return err
	}
	defer f.Close()

	start := time.Now()
	var lastLine time.Time
	failed, firstErr := f.Connect(ctx, func(done, failed int) {
		if progress > 0 && (time.Since(lastLine) >= progress || done == n) {
			lastLine = time.Now()
			fmt.Fprintf(c.stderr, "connecting: %d/%d attempted, %d connected, %d failed\n", done, n, f.Connected(), failed)
		}
	})
	connectTime := time.Since(start)
	if failed > 0 {
		fmt.Fprintf(c.stderr, "%d devices did not connect; first error: %v\n", failed, firstErr)
	}
	if f.Connected() == 0 {
		return fmt.Errorf("no device connected: %v", firstErr)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if duration > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, duration)
		defer cancel()
	}
	if waitForStdin {
		go func() {
			buf := make([]byte, 256)
			for {
				if _, err := c.stdin.Read(buf); err != nil {
					cancel()
					return
				}
			}
		}()
	}
	before := f.Stats()
	var wg sync.WaitGroup
	if progress > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			printProgress(runCtx, c, f, progress)
		}()
	}
	if holdAfterConnect {
		<-runCtx.Done()
	} else {
		f.Run(runCtx, fleet.Load{TelemetryRate: telemetry, MessageSize: size, Properties: properties, ReportRate: reports})
	}
	wg.Wait()
	if !f.Drain(10 * time.Second) {
		fmt.Fprintln(c.stderr, "some requests were not answered within 10s of the end")
	}
	after := f.Stats()
	sum := newSummary(before, after, n, failed, connectTime)
	if summaryFile != "" {
		if err := writeJSONFile(summaryFile, sum); err != nil {
			return err
		}
	}
	return c.printJSON(sum)
}

// parseRate reads a rate flag: a number of operations per second, or max
// (a negative rate: closed loop).
func parseRate(name, s string) (float64, error) {
	if strings.EqualFold(s, "max") {
		return -1, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 {
		return 0, usagef("--%s %q: want a rate per second or max", name, s)
	}
	return r, nil
}

// parseSources reads --source-addrs: a comma-separated list of addresses,
// each of which may be an IPv4 range FIRST-LAST.
func parseSources(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		a, b := net.ParseIP(first).To4(), net.ParseIP(last).To4()
		if !isRange {
			if net.ParseIP(part) == nil {
				return nil, usagef("--source-addrs: %q is not an IP address", part)
			}
			out = append(out, part)
			continue
		}
		if a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, usagef("--source-addrs: %q is not a range of IPv4 addresses within one /24", part)
		}
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(i)).String())
		}
	}
	return out, nil
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// readKeys reads each device's primary key from the registry.
func readKeys(ctx context.Context, client *service.Client, ids []string) ([]fleet.Credential, error) {
	creds := make([]fleet.Credential, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := client.GetDevice(ctx, id)
			switch {
			case err != nil:
				errs[i] = err
			case d.Authentication == nil || d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "":
				errs[i] = fmt.Errorf("device %s has no symmetric key: use --create --auth x509 for certificates", id)
			default:
				creds[i] = fleet.Credential{DeviceID: id, Key: d.Authentication.SymmetricKey.PrimaryKey}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return creds, nil
}

// printProgress writes one line per interval: connected devices and the
// interval's rates and latencies.
func printProgress(ctx context.Context, c *cli, f *fleet.Fleet, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := f.Stats()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := f.Stats()
		secs := now.At.Sub(last.At).Seconds()
		tel := now.Telemetry.Sub(last.Telemetry)
		rep := now.Reports.Sub(last.Reports)
		fmt.Fprintf(c.stderr, "%s connected %d | telemetry %.0f/s p50 %s p99 %s | reported %.0f/s p50 %s | methods %.0f/s | desired %d | c2d %d | errors %d | lost %d\n",
			now.At.Format("15:04:05"), now.Connected,
			float64(tel.Count)/secs, tel.Percentile(50), tel.Percentile(99),
			float64(rep.Count)/secs, rep.Percentile(50),
			float64(now.Methods-last.Methods)/secs, now.Desired, now.C2D, now.Errors, now.Lost)
		last = now
	}
}

// summary is what simulate prints at the end.
type summary struct {
	Devices          int       `json:"devices"`
	Connected        int       `json:"connected"`
	ConnectFailed    int       `json:"connectFailed"`
	ConnectSeconds   float64   `json:"connectSeconds"`
	ConnectLatencyMs latencies `json:"connectLatencyMs"`
	Seconds          float64   `json:"seconds"`
	TelemetrySent    uint64    `json:"telemetrySent"`
	TelemetryAcked   uint64    `json:"telemetryAcked"`
	TelemetryPerSec  float64   `json:"telemetryPerSec"`
	TelemetryMs      latencies `json:"telemetryLatencyMs"`
	Reported         uint64    `json:"reported"`
	ReportedPerSec   float64   `json:"reportedPerSec"`
	ReportedMs       latencies `json:"reportedLatencyMs"`
	Methods          uint64    `json:"methodsAnswered"`
	Desired          uint64    `json:"desiredReceived"`
	C2D              uint64    `json:"c2dReceived"`
	Errors           uint64    `json:"errors"`
	Lost             uint64    `json:"connectionsLost"`
}

type latencies struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
}

func latencyOf(h fleet.HistogramSnapshot) latencies {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latencies{P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)), Mean: ms(h.Mean())}
}

func newSummary(before, after fleet.Stats, n, failed int, connectTime time.Duration) summary {
	secs := after.At.Sub(before.At).Seconds()
	tel := after.Telemetry.Sub(before.Telemetry)
	rep := after.Reports.Sub(before.Reports)
	return summary{
		Devices: n, Connected: after.Connected, ConnectFailed: failed,
		ConnectSeconds: connectTime.Seconds(), ConnectLatencyMs: latencyOf(after.Connects),
		Seconds:       secs,
		TelemetrySent: after.Sent - before.Sent, TelemetryAcked: tel.Count, TelemetryPerSec: float64(tel.Count) / secs, TelemetryMs: latencyOf(tel),
		Reported: rep.Count, ReportedPerSec: float64(rep.Count) / secs, ReportedMs: latencyOf(rep),
		Methods: after.Methods - before.Methods, Desired: after.Desired - before.Desired, C2D: after.C2D - before.C2D,
		Errors: after.Errors - before.Errors, Lost: after.Lost - before.Lost,
	}
}

func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	c := &cli{stdout: f}
	if err := c.printJSON(v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
