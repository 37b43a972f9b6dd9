// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	// pflag, as in the iothub CLI: GNU-style --flags in help and messages.
	flag "github.com/spf13/pflag"

	"github.com/iothubemulator/iothub/emulator"
)

var errHelp = errors.New("help requested")

// config is what the command line and environment say.
type config struct {
	opts        emulator.Options
	configFile  string
	logLevel    string
	logFormat   string
	pprofAddr   string // loopback address of the Go profiler; "" when off
	metricsAddr string // loopback address of /metrics without authentication; "" when off
}

// envFlag describes one flag and the environment variable that sets its default.
type envFlag struct {
	name, env, def, usage string
	target                *string
}

// parseFlags reads flags with defaults taken from IOTHUB_* environment
// variables (a flag on the command line wins over the environment). On
// --help it writes the usage to helpOut and returns errHelp.
func parseFlags(args []string, getenv func(string) string, helpOut io.Writer) (*config, error) {
	c := &config{}
	var hostname, sans, mqttAddr, httpsAddr, dataDir, tlsCert, tlsKey, ownerKey, sasTTL, notify, idScope string
	var amqpAddr, amqpPlainAddr string
	flags := []envFlag{
		{"hostname", "IOTHUB_HOSTNAME", emulator.DefaultHostName, "hub host name used in connection strings, SAS resource URIs and the server certificate", &hostname},
		{"tls-san", "IOTHUB_TLS_SANS", "", "extra DNS names or IPs for the generated certificate, comma-separated (e.g. the compose service name)", &sans},
		{"mqtt-addr", "IOTHUB_MQTT_ADDR", emulator.DefaultMQTTAddr, "MQTT over TLS listen address", &mqttAddr},
		{"https-addr", "IOTHUB_HTTPS_ADDR", emulator.DefaultHTTPSAddr, "HTTPS listen address (REST API, MQTT and AMQP over WebSockets)", &httpsAddr},
		{"amqp-addr", "IOTHUB_AMQP_ADDR", emulator.DefaultAMQPAddr, "AMQP over TLS listen address (devices, service SDKs, Event Hub-compatible endpoint); off to disable", &amqpAddr},
		{"amqp-plain-addr", "IOTHUB_AMQP_PLAIN_ADDR", emulator.DefaultAMQPPlainAddr, "plain AMQP listen address for Event Hubs clients with UseDevelopmentEmulator=true (unencrypted: keep it on loopback); off to disable", &amqpPlainAddr},
		{"data-dir", "IOTHUB_DATA_DIR", emulator.DefaultDataDir, "directory of the database and generated certificates", &dataDir},
		{"tls-cert", "IOTHUB_TLS_CERT", "", "server certificate (PEM); generated into the data dir when empty", &tlsCert},
		{"tls-key", "IOTHUB_TLS_KEY", "", "server private key (PEM)", &tlsKey},
		{"owner-key", "IOTHUB_OWNER_KEY", emulator.WellKnownOwnerKey, "primary key (base64) of the iothubowner policy", &ownerKey},
		{"config", "IOTHUB_CONFIG", "", "JSON file declaring policies and pre-registered devices", &c.configFile},
		{"dps-id-scope", "IOTHUB_DPS_ID_SCOPE", emulator.DefaultIDScope, "ID scope of the Device Provisioning Service served on the same host", &idScope},
		{"log-level", "IOTHUB_LOG_LEVEL", "info", "log level: debug, info, warn, error", &c.logLevel},
		{"log-format", "IOTHUB_LOG_FORMAT", "text", "log format: text or json", &c.logFormat},
		{"pprof-addr", "IOTHUB_PPROF_ADDR", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; empty: off", &c.pprofAddr},
		{"metrics-addr", "IOTHUB_METRICS_ADDR", "", "serve the Prometheus metrics (/metrics) without authentication on this loopback address, e.g. 127.0.0.1:9464; empty: off (the HTTPS port serves them to the owner policy)", &c.metricsAddr},
		// File upload: the hub's storage account (README: "File upload").
		{"storage-connection-string", "IOTHUB_STORAGE_CONNECTION_STRING", "", "Azure Storage connection string (e.g. Azurite's) for file upload; empty: file upload off", &c.opts.StorageConnectionString},
		{"storage-ca-file", "IOTHUB_STORAGE_CA_FILE", "", "PEM CA that storage's HTTPS certificate chains to, besides the system roots and the emulator's CA", &c.opts.StorageCAFile},
		{"file-upload-container", "IOTHUB_FILE_UPLOAD_CONTAINER", "", "blob container devices upload to (default " + emulator.DefaultFileUploadContainer + ")", &c.opts.FileUploadContainer},
		{"file-upload-sas-ttl", "IOTHUB_FILE_UPLOAD_SAS_TTL", "", "lifetime of a file upload's SAS URI, 1m to 24h (default 1h)", &sasTTL},
		{"file-upload-notifications", "IOTHUB_FILE_UPLOAD_NOTIFICATIONS", "true", "send file-upload notifications to the back end: true or false", &notify},
	}
	fs := flag.NewFlagSet("iothub-emulator", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by the caller
	help := fs.BoolP("help", "h", false, "show this help")
	showVersion := fs.Bool("version", false, "print the version and exit")
	for _, f := range flags {
		def := f.def
		if v := getenv(f.env); v != "" {
			def = v
		}
		fs.StringVar(f.target, f.name, def, f.usage+" (env "+f.env+")")
	}
	var maxMsgs, maxAge, maxBytes, partitions string
	fs.StringVar(&maxMsgs, "telemetry-max-messages", orEnv(getenv, "IOTHUB_TELEMETRY_MAX_MESSAGES", strconv.Itoa(emulator.DefaultTelemetryMaxMessages)),
		"recorded device-to-cloud messages to keep (env IOTHUB_TELEMETRY_MAX_MESSAGES)")
	fs.StringVar(&maxAge, "telemetry-max-age", orEnv(getenv, "IOTHUB_TELEMETRY_MAX_AGE", shortDuration(emulator.DefaultTelemetryMaxAge)),
		"drop recorded messages older than this (env IOTHUB_TELEMETRY_MAX_AGE)")
	fs.StringVar(&maxBytes, "telemetry-max-bytes", orEnv(getenv, "IOTHUB_TELEMETRY_MAX_BYTES", byteSize(emulator.DefaultTelemetryMaxBytes)),
		"stored size of recorded messages to keep, in bytes or with KiB, MiB or GiB (env IOTHUB_TELEMETRY_MAX_BYTES)")
	fs.StringVar(&partitions, "partitions", orEnv(getenv, "IOTHUB_PARTITIONS", strconv.Itoa(emulator.DefaultPartitions)),
		"partitions of the Event Hub-compatible endpoint, 1 to 32; device ids are hashed to them (env IOTHUB_PARTITIONS)")
	var maxJobs string
	fs.StringVar(&maxJobs, "max-concurrent-jobs", orEnv(getenv, "IOTHUB_MAX_CONCURRENT_JOBS", strconv.Itoa(emulator.DefaultMaxConcurrentJobs)),
		"jobs (/jobs/v2) that may be queued, scheduled or running at once: 1 is the Free and S1 tiers' limit, 5 S2's, 10 S3's (env IOTHUB_MAX_CONCURRENT_JOBS)")
	inMemDef := isTrue(getenv("IOTHUB_IN_MEMORY"))
	fs.BoolVar(&c.opts.InMemory, "in-memory", inMemDef, "keep nothing after exit (env IOTHUB_IN_MEMORY)")
	if err := singleDash(fs, args); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case *help:
		printUsage(helpOut, fs)
		return nil, errHelp
	case *showVersion:
		return nil, errVersion
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unknown command %q: the commands are %s, and flags start with --", fs.Arg(0), commandNames())
	}
	n, err := strconv.Atoi(maxMsgs)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("--telemetry-max-messages %q: want a positive number", maxMsgs)
	}
	age, err := time.ParseDuration(maxAge)
	if err != nil || age <= 0 {
		return nil, fmt.Errorf("--telemetry-max-age %q: want a positive duration such as 24h", maxAge)
	}
	size, err := parseByteSize(maxBytes)
	if err != nil || size <= 0 {
		return nil, fmt.Errorf("--telemetry-max-bytes %q: want a positive size such as 256MiB", maxBytes)
	}
	c.opts.TelemetryMaxMessages, c.opts.TelemetryMaxAge, c.opts.TelemetryMaxBytes = n, age, size
	if c.opts.Partitions, err = strconv.Atoi(partitions); err != nil || c.opts.Partitions < 1 || c.opts.Partitions > 32 {
		return nil, fmt.Errorf("--partitions %q: want a number from 1 to 32", partitions)
	}
	if c.opts.MaxConcurrentJobs, err = strconv.Atoi(maxJobs); err != nil || c.opts.MaxConcurrentJobs < 1 {
		return nil, fmt.Errorf("--max-concurrent-jobs %q: want a positive number such as 1, 5 or 10", maxJobs)
	}
	if sasTTL != "" {
		d, err := time.ParseDuration(sasTTL)
		if err != nil || d < time.Minute || d > 24*time.Hour {
			return nil, fmt.Errorf("--file-upload-sas-ttl %q: want a duration from 1m to 24h", sasTTL)
		}
		c.opts.FileUploadSASTTL = d
	}
	switch strings.ToLower(notify) {
	case "true", "1", "yes", "on":
	case "false", "0", "no", "off":
		c.opts.DisableFileUploadNotifications = true
	default:
		return nil, fmt.Errorf("--file-upload-notifications %q: want true or false", notify)
	}
	c.opts.HostName = hostname
	c.opts.MQTTAddr = mqttAddr
	c.opts.HTTPSAddr = httpsAddr
	c.opts.AMQPAddr = amqpAddr
	c.opts.AMQPPlainAddr = amqpPlainAddr
	c.opts.DataDir = dataDir
	c.opts.TLSCertFile = tlsCert
	c.opts.TLSKeyFile = tlsKey
	c.opts.OwnerKey = ownerKey
	c.opts.IDScope = idScope
	for _, s := range strings.Split(sans, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.opts.TLSSANs = append(c.opts.TLSSANs, s)
		}
	}
	if c.pprofAddr != "" && !isLoopback(c.pprofAddr) {
		return nil, fmt.Errorf("--pprof-addr %q: want a loopback address such as 127.0.0.1:6060 (the profiler has no authentication)", c.pprofAddr)
	}
	if c.metricsAddr != "" && !isLoopback(c.metricsAddr) {
		return nil, fmt.Errorf("--metrics-addr %q: want a loopback address such as 127.0.0.1:9464 (it has no authentication; the HTTPS port serves /metrics to the owner policy)", c.metricsAddr)
	}
	c.opts.Logger, err = newLogger(c.logLevel, c.logFormat, os.Stderr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// shortDuration writes d as a person would (24h, not 24h0m0s).
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func orEnv(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// parseByteSize reads a size in bytes, optionally with a binary unit:
// 1048576, 1024KiB, 1MiB, 1GiB.
func parseByteSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("size overflows")
	}
	return n * mult, nil
}

// byteSize writes n as parseByteSize reads it, in the largest binary unit
// that divides it (268435456 as 256MiB).
func byteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
