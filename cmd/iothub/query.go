// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"

	"github.com/spf13/cobra"
)

func init() { addGroup((*cli).queryCommand) }

func (c *cli) queryCommand() *cobra.Command {
	var pageSize int
	cmd := &cobra.Command{
		Use:     "query <SQL>",
		Short:   "Run an IoT Hub query and print every result as one JSON array",
		Example: `  iothub query "SELECT * FROM devices WHERE tags.site = 'B7'"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("query takes one argument, the query text (quote it)")
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			items := []json.RawMessage{}
			for item, err := range sc.Query(args[0], pageSize).All(cmd.Context()) {
				if err != nil {
					return err
				}
				items = append(items, item)
			}
			return c.printJSON(items)
		}),
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 0, "items per request (default: the hub's choice)")
	return cmd
}
