// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iothubemulator/iothub/internal/buildinfo"
	"github.com/iothubemulator/iothub/service"
)

// Exit codes, documented in the root command's help and the README.
const (
	exitOK    = 0
	exitError = 1 // the operation failed: the hub refused, the network, a file
	exitUsage = 2 // the command line was wrong; nothing was sent
)

// cli holds the process environment, so that tests run commands in process,
// and the values of the flags every command accepts.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	connectionString string // --connection-string; IOTHUB_CONNECTION_STRING when empty
	caFile           string // --ca-file; IOTHUB_CA_FILE when empty
	output           string // --output: json or tsv
	amqpWebSockets   bool   // --websockets of the AMQP commands
	amqpAddr         string // --amqp-addr of the AMQP commands
}

// groups builds the top-level commands. Each command group registers its
// constructor from its own file (see addGroup), so adding a group touches
// no other file.
var groups []func(c *cli) *cobra.Command

// addGroup registers a top-level command. Call it from an init function in
// the group's file.
func addGroup(f func(c *cli) *cobra.Command) { groups = append(groups, f) }

// usageError is a mistake on the command line: the command's usage follows
// the message (unless bare) and the exit code is exitUsage.
type usageError struct {
	msg  string
	bare bool // the usage would not help, e.g. a missing environment variable
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// failure is an error from running a command (as opposed to parsing it):
// the hub's answer, the network, a file. It is what runE returns for every
// error that is not a usageError.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// runE adapts a command body: errors it returns are failures unless they are
// usage errors. Errors cobra reports before the body runs (unknown commands
// and flags, bad flag values) are usage errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &failure{err}
	}
}

func (c *cli) run(ctx context.Context, args []string) int {
	root := c.newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var f *failure
	if errors.As(err, &f) {
		fmt.Fprintf(c.stderr, "iothub: %v\n", c.explain(f.err))
		return exitError
	}
	if cmd == nil {
		cmd = root
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.bare {
		fmt.Fprintf(c.stderr, "iothub: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "iothub: %v\n\n%s", err, cmd.UsageString())
	return exitUsage
}

func (c *cli) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "iothub",
		Short: "Manage an Azure IoT hub, or the IoT Hub emulator, from the command line",
		Long: `iothub manages an IoT hub (or the emulator) through its service REST API:
device and module identities, twins, direct methods and queries. It can
also act as a device (device send, listen, report) so that you can try a
hub without writing code. Over AMQP, as the official SDKs do, it sends
cloud-to-device messages and reads their feedback (c2d), tails telemetry
from the hub's Event Hub-compatible endpoint (monitor-events) and receives
file-upload notifications (file-notification).

The service commands read a shared access policy connection string from
--connection-string or IOTHUB_CONNECTION_STRING, and trust the CA
certificates in --ca-file or IOTHUB_CA_FILE besides the system ones (the
emulator's CA is ca.pem in its data dir: iothub-data/ca.pem by default).
Output is JSON on stdout; errors go to stderr.

Exit status: 0 success, 1 the operation failed (the hub's refusal, the
network, a file), 2 the command line was wrong (nothing was sent).`,
		Version:       buildinfo.Read().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("iothub {{.Version}}\n")
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVar(&c.connectionString, "connection-string", "", "shared access policy connection string (default $IOTHUB_CONNECTION_STRING)")
	pf.StringVar(&c.caFile, "ca-file", "", "PEM file of CA certificates to trust besides the system ones (default $IOTHUB_CA_FILE)")
	pf.StringVarP(&c.output, "output", "o", "json", "output format: json, or tsv (the values of each result's top-level fields, tab-separated, a line per result)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if c.output != "json" && c.output != "tsv" {
			return usagef("--output must be json or tsv")
		}
		return nil
	}
	cmds := make([]*cobra.Command, 0, len(groups))
	for _, g := range groups {
		cmds = append(cmds, g(c))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// group returns a command that only holds subcommands. Run with no or an
// unknown subcommand it is a usage error (cobra would print the help and
// exit 0).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use + " <command>",
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs a subcommand", path(cmd))
			}
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		},
	}
	g.AddCommand(subs...)
	return g
}

// path is cmd's command path without the program name, e.g. "device show".
func path(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// noArgs accepts no positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return usagef("%s takes no arguments, got %q", path(cmd), args[0])
	}
	return nil
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			for i, a := range args {
				if a == "" {
					return usagef("%s: the %s must not be empty", path(cmd), names[i])
				}
			}
			return nil
		}
		return usagef("%s takes %s, got %d %s", path(cmd), describeArgs(names), len(args), plural(len(args), "argument"))
	}
}

func describeArgs(names []string) string {
	switch len(names) {
	case 0:
		return "no arguments"
	case 1:
		return "one argument, the " + names[0]
	}
	return fmt.Sprintf("%d arguments, the %s and the %s", len(names), strings.Join(names[:len(names)-1], ", the "), names[len(names)-1])
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// service returns a service client from the common flags.
func (c *cli) service() (*service.Client, error) {
	cs := c.connectionString
	if cs == "" {
		cs = c.getenv("IOTHUB_CONNECTION_STRING")
	}
	if cs == "" {
		return nil, &usageError{msg: "no connection string: pass --connection-string or set IOTHUB_CONNECTION_STRING (the emulator prints its own at start)", bare: true}
	}
	var opts []service.Option
	pool, err := c.rootCAs()
	if err != nil {
		return nil, err
	}
	if pool != nil {
		opts = append(opts, service.WithRootCAs(pool))
	}
	opts = append(opts, c.amqpOptions()...)
	return service.NewFromConnectionString(cs, opts...)
}

// amqpOptions are the service options of --websockets and --amqp-addr.
func (c *cli) amqpOptions() []service.Option {
	var opts []service.Option
	if c.amqpWebSockets {
		opts = append(opts, service.WithWebSockets())
	}
	if c.amqpAddr != "" {
		opts = append(opts, service.WithAMQPAddr(c.amqpAddr))
	}
	return opts
}

// caFilePath is the CA file from --ca-file or IOTHUB_CA_FILE, or "".
func (c *cli) caFilePath() string {
	if c.caFile != "" {
		return c.caFile
	}
	return c.getenv("IOTHUB_CA_FILE")
}

// rootCAs returns the system roots plus the CA file's certificates, or nil
// when no CA file is configured.
func (c *cli) rootCAs() (*x509.CertPool, error) {
	f := c.caFilePath()
	if f == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("reading CA file (--ca-file or IOTHUB_CA_FILE): %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", f)
	}
	return pool, nil
}

// printJSON writes v as indented JSON, or as TSV with --output tsv.
func (c *cli) printJSON(v any) error {
	if c.output == "tsv" {
		return writeTSV(c.stdout, v)
	}
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

// command is a leaf command written as flag declarations and a body that
// runs with a service client (jobs.go and configurations.go use it); leaf
// turns it into a cobra command. Its body checks its own arguments.
type command struct {
	flags func(fs *pflag.FlagSet)
	run   func(ctx context.Context, sc *service.Client, args []string) error
}

// leaf makes the cobra command use (e.g. "show <job-id>") of cmd.
func (c *cli) leaf(use, short string, cmd command) *cobra.Command {
	cc := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: runE(func(cc *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			return cmd.run(cc.Context(), sc, args)
		}),
	}
	if cmd.flags != nil {
		cmd.flags(cc.Flags())
	}
	return cc
}

// oneID checks that args is exactly one device id.
func oneID(args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usagef("want exactly one device id, got %d arguments", len(args))
	}
	return args[0], nil
}
