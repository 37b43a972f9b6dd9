// SPDX-License-Identifier: MIT

package main

import (
	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// The module group: module identities on a device, their connection
// strings, twins and direct methods (az iot hub module-identity,
// module-twin, invoke-module-method).

func init() { addGroup((*cli).moduleCommand) }

func (c *cli) moduleCommand() *cobra.Command {
	return group("module", "Module identities, module twins and module methods",
		c.moduleCreate(), c.moduleShow(), c.moduleList(), c.moduleDelete(),
		group("connection-string", "A module's connection string", c.moduleConnectionStringShow()),
		group("twin", "Module twins", c.moduleTwinShow(), c.moduleTwinUpdate()),
		group("method", "Direct methods on a module", c.moduleMethodInvoke()),
	)
}

func (c *cli) moduleCreate() *cobra.Command {
	var (
		auth       authFlags
		deviceHost string
	)
	cmd := &cobra.Command{
		Use:   "create <device-id> <module-id>",
		Short: "Create a module identity on a device and print it with its connection string",
		Example: `  iothub module create myDevice filter
  iothub module create myDevice camera --x509-primary 9A3C...`,
		Args: exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			m := &service.Module{DeviceID: args[0], ModuleID: args[1]}
			var err error
			if m.Authentication, err = auth.mechanism(); err != nil {
				return err
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			created, err := sc.CreateModule(cmd.Context(), m)
			if err != nil {
				return err
			}
			cs, err := service.ModuleConnectionString(hostFor(deviceHost, sc), created)
			if err != nil {
				return err
			}
			return c.printJSON(struct {
				ConnectionString string          `json:"connectionString"`
				Module           *service.Module `json:"module"`
			}{cs, created})
		}),
	}
	auth.register(cmd)
	cmd.Flags().StringVar(&deviceHost, "device-host", "", deviceHostHelp)
	return cmd
}

func (c *cli) moduleShow() *cobra.Command {
	return &cobra.Command{
		Use:   "show <device-id> <module-id>",
		Short: "Print a module identity",
		Args:  exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			m, err := sc.GetModule(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return c.printJSON(m)
		}),
	}
}

func (c *cli) moduleList() *cobra.Command {
	return &cobra.Command{
		Use:   "list <device-id>",
		Short: "Print a device's module identities as a JSON array",
		Args:  exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			ms, err := sc.ListModules(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ms == nil {
				ms = []*service.Module{}
			}
			return c.printJSON(ms)
		}),
	}
}

func (c *cli) moduleDelete() *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "delete <device-id> <module-id>",
		Short: "Delete a module identity and its twin",
		Args:  exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			return sc.DeleteModule(cmd.Context(), args[0], args[1], etag)
		}),
	}
	cmd.Flags().StringVar(&etag, "etag", "", "delete only if the identity still has this etag")
	return cmd
}

func (c *cli) moduleConnectionStringShow() *cobra.Command {
	var deviceHost, keyType string
	cmd := &cobra.Command{
		Use:   "show <device-id> <module-id>",
		Short: "Print a module's connection string",
		Args:  exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if err := checkKeyType(keyType); err != nil {
				return err
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			m, err := sc.GetModule(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			m.Authentication = pickKey(m.Authentication, keyType)
			cs, err := service.ModuleConnectionString(hostFor(deviceHost, sc), m)
			if err != nil {
				return err
			}
			return c.printJSON(map[string]string{"connectionString": cs})
		}),
	}
	cmd.Flags().StringVar(&deviceHost, "device-host", "", deviceHostHelp)
	cmd.Flags().StringVar(&keyType, "key-type", "primary", "which SAS key the connection string carries: primary or secondary")
	return cmd
}

func (c *cli) moduleTwinShow() *cobra.Command {
	return &cobra.Command{
		Use:   "show <device-id> <module-id>",
		Short: "Print a module's twin",
		Args:  exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return c.showTwin(cmd, args[0], args[1])
		}),
	}
}

func (c *cli) moduleTwinUpdate() *cobra.Command {
	var p twinPatchFlags
	cmd := &cobra.Command{
		Use:     "update <device-id> <module-id> (--desired JSON | --tags JSON | --patch JSON)",
		Short:   "Patch a module's tags and desired properties and print the twin",
		Long:    twinUpdateLong,
		Example: `  iothub module twin update myDevice filter --desired '{"threshold":30}'`,
		Args:    exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return c.updateTwin(cmd, &p, args[0], args[1])
		}),
	}
	p.register(cmd)
	return cmd
}

func (c *cli) moduleMethodInvoke() *cobra.Command {
	var m methodFlags
	cmd := &cobra.Command{
		Use:     "invoke <device-id> <module-id> --name NAME",
		Short:   "Invoke a direct method on a module and print its status and payload",
		Example: `  iothub module method invoke myDevice filter --name reset --payload '{}'`,
		Args:    exactArgs("device id", "module id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			call, err := m.call(c, path(cmd))
			if err != nil {
				return err
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			res, err := sc.InvokeModuleMethod(cmd.Context(), args[0], args[1], call)
			if err != nil {
				return err
			}
			return c.printJSON(res)
		}),
	}
	m.register(cmd)
	return cmd
}
