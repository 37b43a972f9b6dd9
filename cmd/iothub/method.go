// SPDX-License-Identifier: MIT

package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// The method group: direct methods.

func init() { addGroup((*cli).methodCommand) }

func (c *cli) methodCommand() *cobra.Command {
	return group("method", "Direct methods", c.methodInvoke())
}

// methodFlags are the flags of method invoke and module method invoke.
type methodFlags struct {
	name, payload           string
	timeout, connectTimeout time.Duration
}

func (m *methodFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&m.name, "name", "", "method name (required)")
	f.StringVar(&m.payload, "payload", "", "payload as JSON, @FILE or - for stdin (default null)")
	f.DurationVar(&m.timeout, "timeout", service.DefaultMethodResponseTimeout, "how long the hub waits for the device's answer (5s-300s)")
	f.DurationVar(&m.connectTimeout, "connect-timeout", 0, "how long the hub waits for the device to connect (0: it must be connected)")
}

func (m *methodFlags) call(c *cli, cmdPath string) (service.MethodCall, error) {
	if m.name == "" {
		return service.MethodCall{}, usagef("%s needs --name", cmdPath)
	}
	call := service.MethodCall{Name: m.name, ResponseTimeout: m.timeout, ConnectTimeout: m.connectTimeout}
	if m.payload != "" {
		var err error
		if call.Payload, err = c.readJSONArg("payload", m.payload); err != nil {
			return service.MethodCall{}, err
		}
	}
	return call, nil
}

func (c *cli) methodInvoke() *cobra.Command {
	var (
		m      methodFlags
		module string
	)
	cmd := &cobra.Command{
		Use:     "invoke <device-id> --name NAME",
		Short:   "Invoke a direct method on a device and print its status and payload",
		Example: `  iothub method invoke myDevice --name rebootDevice --payload '{"delay":5}' --connect-timeout 30s`,
		Args:    exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			call, err := m.call(c, path(cmd))
			if err != nil {
				return err
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			var res *service.MethodResult
			if module != "" {
				res, err = sc.InvokeModuleMethod(cmd.Context(), args[0], module, call)
			} else {
				res, err = sc.InvokeMethod(cmd.Context(), args[0], call)
			}
			if err != nil {
				return err
			}
			return c.printJSON(res)
		}),
	}
	m.register(cmd)
	cmd.Flags().StringVar(&module, "module", "", "invoke the method on this module of the device")
	return cmd
}
