// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// The twin group: device (and, with --module, module) twins.

func init() { addGroup((*cli).twinCommand) }

func (c *cli) twinCommand() *cobra.Command {
	return group("twin", "Device twins: show and update tags and desired properties",
		c.twinShow(), c.twinUpdate())
}

func (c *cli) twinShow() *cobra.Command {
	var module string
	cmd := &cobra.Command{
		Use:   "show <device-id>",
		Short: "Print a device's twin",
		Args:  exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			var t *service.Twin
			if module != "" {
				t, err = sc.GetModuleTwin(cmd.Context(), args[0], module)
			} else {
				t, err = sc.GetTwin(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			return c.printJSON(t)
		}),
	}
	cmd.Flags().StringVar(&module, "module", "", "show the twin of this module of the device")
	return cmd
}

func (c *cli) twinUpdate() *cobra.Command {
	var module, etag, patch string
	cmd := &cobra.Command{
		Use:   "update <device-id> --patch JSON",
		Short: "Patch a device's twin and print the result",
		Args:  exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if patch == "" {
				return usagef("twin update needs --patch")
			}
			raw, err := c.readJSONArg("patch", patch)
			if err != nil {
				return err
			}
			var p service.Twin
			if err := json.Unmarshal(raw, &p); err != nil {
				return usagef("--patch is not a twin patch: %v", err)
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			var t *service.Twin
			if module != "" {
				t, err = sc.UpdateModuleTwin(cmd.Context(), args[0], module, &p, etag)
			} else {
				t, err = sc.UpdateTwin(cmd.Context(), args[0], &p, etag)
			}
			if err != nil {
				return err
			}
			return c.printJSON(t)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&module, "module", "", "update the twin of this module of the device")
	f.StringVar(&etag, "etag", "", "update only if the twin still has this etag")
	f.StringVar(&patch, "patch", "", `patch as JSON, @FILE or - for stdin, e.g. {"tags":{...},"properties":{"desired":{...}}}`)
	return cmd
}
