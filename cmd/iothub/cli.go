// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/iothubemulator/iothub/service"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

const usage = `usage: iothub [common flags] <command> [flags] [args]

Commands:
  device create <id> [--edge] [--status enabled|disabled] [--device-host HOST[:PORT]]
                     [--primary-key K --secondary-key K | --x509-primary T [--x509-secondary T] | --ca]
  device show <id>
  device list [--top N]
  device delete <id> [--etag E]
  twin show <id> [--module M]
  twin update <id> [--module M] [--etag E] --patch JSON|@FILE|-
  method invoke <id> [--module M] --name NAME [--payload JSON] [--timeout 30s] [--connect-timeout 0s]
  query [--page-size N] <SQL>
` + jobUsage + configurationUsage + `
Emulator-only commands (a real hub offers these over AMQP only):
  monitor-events [--device ID] [--module M] [--since N | --from-start] [--timeout D]
  c2d send <id> --body TEXT|@FILE|- [--ack none|positive|negative|full] [--ttl 1h]
               [--property k=v ...] [--message-id ID] [--correlation-id ID] [--user-id ID]
               [--content-type T] [--content-encoding E]
  c2d feedback

Common flags (accepted anywhere on the line):
  --connection-string CS  shared access policy connection string (default $IOTHUB_CONNECTION_STRING)
  --ca-file FILE          PEM file of CA certificates to trust besides the system ones (default $IOTHUB_CA_FILE)

Output is JSON on stdout. "device create" prints the new device and its
connection string, whose HostName is the hub host without port unless
--device-host says otherwise (the emulator's MQTT port, for instance).
"monitor-events" prints the telemetry that arrives from now on (after
sequence number --since, or every retained message with --from-start), one JSON object per line (deviceId,
moduleId, sequenceNumber, enqueuedTime, properties, systemProperties, body;
bodyEncoding "base64" when the body is not UTF-8 text), until --timeout or
Ctrl-C. "c2d send" prints the message id, generated when --message-id is
absent. Exit status: 0 success, 1 failed operation, 2 usage error.
`

// cli holds the process environment so that tests can run commands in
// process.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// command is one leaf command: it declares its flags on fs, then runs with
// the positional arguments.
type command struct {
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, c *service.Client, args []string) error
}

func (c *cli) run(ctx context.Context, args []string) int {
	err := c.dispatch(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.stdout, usage+enrollmentUsage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "iothub: %v\n\n%s", err, usage+enrollmentUsage)
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "iothub: %v\n", err)
		return exitError
	}
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	// Common flags may precede the command words; leaf flags follow them.
	var common commonFlags
	fs := c.flagSet("iothub", &common)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	words := fs.Args()
	if len(words) == 0 || words[0] == "help" {
		return flag.ErrHelp
	}
	name, rest := words[0], words[1:]
	if name == "enrollment" {
		if len(rest) == 0 {
			return usagef("enrollment needs a subcommand")
		}
		return c.enrollment(ctx, rest[0], rest[1:], common)
	}
	switch name {
	case "query", "monitor-events":
	case "device", "twin", "method", "c2d", "job", "configuration", "digitaltwin":
		if len(rest) == 0 {
			return usagef("%s needs a subcommand", name)
		}
		name, rest = name+" "+rest[0], rest[1:]
	default:
		return usagef("unknown command %q", name)
	}
	cmd, ok := c.commands()[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	fs = c.flagSet(name, &common)
	cmd.flags(fs)
	leafArgs, err := parseInterleaved(fs, rest)
	if err != nil {
		return err
	}
	client, err := c.newClient(common)
	if err != nil {
		return err
	}
	return cmd.run(ctx, client, leafArgs)
}

// commonFlags are accepted by every command.
type commonFlags struct {
	connectionString string
	caFile           string
}

func (c *cli) flagSet(name string, common *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	if common.connectionString == "" {
		common.connectionString = c.getenv("IOTHUB_CONNECTION_STRING")
	}
	if common.caFile == "" {
		common.caFile = c.getenv("IOTHUB_CA_FILE")
	}
	fs.StringVar(&common.connectionString, "connection-string", common.connectionString, "shared access policy connection string")
	fs.StringVar(&common.caFile, "ca-file", common.caFile, "PEM file of CA certificates to trust")
	return fs
}

// parseInterleaved parses flags wherever they appear among the positional
// arguments (the flag package alone stops at the first positional one).
// Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *cli) newClient(common commonFlags) (*service.Client, error) {
	if common.connectionString == "" {
		return nil, usagef("no connection string: pass --connection-string or set IOTHUB_CONNECTION_STRING")
	}
	var opts []service.Option
	if common.caFile != "" {
		pem, err := os.ReadFile(common.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", common.caFile)
		}
		opts = append(opts, service.WithRootCAs(pool))
	}
	return service.NewFromConnectionString(common.connectionString, opts...)
}

// printJSON writes v as indented JSON.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// readArg returns the value of flag name given inline, from a file
// ("@path") or from standard input ("-").
func (c *cli) readArg(name, v string) ([]byte, error) {
	var data []byte
	var err error
	switch {
	case v == "-":
		data, err = io.ReadAll(c.stdin)
	case strings.HasPrefix(v, "@"):
		data, err = os.ReadFile(v[1:])
	default:
		data = []byte(v)
	}
	if err != nil {
		return nil, fmt.Errorf("reading --%s: %w", name, err)
	}
	return data, nil
}

// readJSONArg returns the JSON given inline, from a file ("@path") or from
// standard input ("-"), checking that it is valid.
func (c *cli) readJSONArg(name, v string) (json.RawMessage, error) {
	data, err := c.readArg(name, v)
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, usagef("--%s is not valid JSON", name)
	}
	return json.RawMessage(data), nil
}
