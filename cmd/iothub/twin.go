// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/service"
)

// The twin group: device (and, with --module, module) twins. The module
// group's twin commands share the flags and patch rules defined here.

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
			return c.showTwin(cmd, args[0], module)
		}),
	}
	cmd.Flags().StringVar(&module, "module", "", "show the twin of this module of the device")
	return cmd
}

func (c *cli) showTwin(cmd *cobra.Command, deviceID, moduleID string) error {
	sc, err := c.service()
	if err != nil {
		return err
	}
	var t *service.Twin
	if moduleID != "" {
		t, err = sc.GetModuleTwin(cmd.Context(), deviceID, moduleID)
	} else {
		t, err = sc.GetTwin(cmd.Context(), deviceID)
	}
	if err != nil {
		return err
	}
	return c.printJSON(t)
}

const twinUpdateLong = `Patch the twin and print the result. Give the desired properties with
--desired and the tags with --tags (each a JSON object; null clears the
section), or a whole patch with --patch:

  {"tags": {...}, "properties": {"desired": {...}}}

A member set to null is deleted. Desired properties outside the
"properties" wrapper are an error, not a patch that changes nothing.
Reported properties are the device's to write (iothub device report).
Each value may be JSON, @FILE or - for standard input.`

func (c *cli) twinUpdate() *cobra.Command {
	var (
		p      twinPatchFlags
		module string
	)
	cmd := &cobra.Command{
		Use:   "update <device-id> (--desired JSON | --tags JSON | --patch JSON)",
		Short: "Patch a device's tags and desired properties and print the twin",
		Long:  twinUpdateLong,
		Example: `  iothub twin update myDevice --desired '{"targetTemperature":21.5}'
  iothub twin update myDevice --tags '{"site":"B7"}' --etag AAAAAAAAAAE=
  iothub twin update myDevice --patch @patch.json`,
		Args: exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return c.updateTwin(cmd, &p, args[0], module)
		}),
	}
	p.register(cmd)
	cmd.Flags().StringVar(&module, "module", "", "update the twin of this module of the device")
	return cmd
}

func (c *cli) updateTwin(cmd *cobra.Command, p *twinPatchFlags, deviceID, moduleID string) error {
	patch, err := p.build(c, path(cmd))
	if err != nil {
		return err
	}
	sc, err := c.service()
	if err != nil {
		return err
	}
	var t *service.Twin
	if moduleID != "" {
		t, err = sc.UpdateModuleTwin(cmd.Context(), deviceID, moduleID, patch, p.etag)
	} else {
		t, err = sc.UpdateTwin(cmd.Context(), deviceID, patch, p.etag)
	}
	if err != nil {
		return err
	}
	return c.printJSON(t)
}

// twinPatchFlags are the flags of twin update and module twin update.
type twinPatchFlags struct {
	desired, tags, patch, etag string
}

func (p *twinPatchFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.desired, "desired", "", `desired properties to patch, a JSON object, e.g. {"fan":2,"mode":null}`)
	f.StringVar(&p.tags, "tags", "", `tags to patch, a JSON object, e.g. {"site":"B7"}`)
	f.StringVar(&p.patch, "patch", "", `the whole patch: {"tags":{...},"properties":{"desired":{...}}}`)
	f.StringVar(&p.etag, "etag", "", "update only if the twin still has this etag")
}

// twinReadOnly are the members of a twin as shown (iothub twin show) that
// a patch may carry but that do not change it; the hub ignores them.
var twinReadOnly = []string{
	"deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount",
	"authenticationType", "x509Thumbprint", "modelId", "capabilities", "deviceScope", "parentScopes",
}

// build returns the patch the flags describe, refusing a patch whose
// content the hub would drop without a word.
func (p *twinPatchFlags) build(c *cli, cmdPath string) (*service.Twin, error) {
	switch {
	case p.patch != "" && (p.desired != "" || p.tags != ""):
		return nil, usagef("give --patch, or --desired and --tags, not both")
	case p.patch == "" && p.desired == "" && p.tags == "":
		return nil, usagef("%s needs --desired, --tags or --patch", cmdPath)
	}
	var patch service.Twin
	if p.patch == "" {
		var err error
		if patch.Tags, err = c.objectArg("tags", p.tags); err != nil {
			return nil, err
		}
		if patch.Properties.Desired, err = c.objectArg("desired", p.desired); err != nil {
			return nil, err
		}
		return &patch, nil
	}
	raw, err := c.readJSONArg("patch", p.patch)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, usagef(`--patch must be a JSON object: {"tags":{...},"properties":{"desired":{...}}}`)
	}
	for _, k := range sortedKeys(top) {
		v := top[k]
		switch {
		case k == "tags":
			if patch.Tags, err = objectValue("--patch tags", v); err != nil {
				return nil, err
			}
		case k == "properties":
			if patch.Properties, err = patchProperties(v); err != nil {
				return nil, err
			}
		case k == "desired":
			return nil, usagef(`--patch has "desired" outside the "properties" wrapper, so it would change nothing: write {"properties":{"desired":{...}}}, or pass the object with --desired`)
		case k == "reported":
			return nil, usagef(`--patch has "reported": reported properties are written by the device (iothub device report)`)
		case slices.Contains(twinReadOnly, k):
			// As shown by twin show; the hub ignores it in a patch.
		default:
			return nil, usagef(`--patch has an unknown member %q: a twin patch holds "tags" and "properties": {"desired": ...}`, k)
		}
	}
	return &patch, nil
}

func patchProperties(v json.RawMessage) (service.TwinProperties, error) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(v, &props); err != nil || props == nil {
		return service.TwinProperties{}, usagef(`--patch properties must be an object: {"desired":{...}}`)
	}
	var out service.TwinProperties
	for _, k := range sortedKeys(props) {
		switch k {
		case "desired":
			var err error
			if out.Desired, err = objectValue("--patch properties.desired", props[k]); err != nil {
				return service.TwinProperties{}, err
			}
		case "reported":
			return service.TwinProperties{}, usagef(`--patch has properties.reported: reported properties are written by the device (iothub device report)`)
		default:
			return service.TwinProperties{}, usagef(`--patch properties has an unknown member %q: only "desired" can be patched`, k)
		}
	}
	return out, nil
}

// objectArg reads flag name (JSON, @FILE or -) as a twin section: an object,
// or null to clear it. An unset flag gives nil, which leaves the section out.
func (c *cli) objectArg(name, v string) (service.TwinCollection, error) {
	if v == "" {
		return nil, nil
	}
	raw, err := c.readJSONArg(name, v)
	if err != nil {
		return nil, err
	}
	return objectValue("--"+name, raw)
}

func objectValue(what string, raw json.RawMessage) (service.TwinCollection, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '{' && !bytes.Equal(raw, []byte("null"))) {
		return nil, usagef("%s must be a JSON object (or null to clear it), got %s", what, abbreviate(string(raw)))
	}
	return service.TwinCollection(raw), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return strings.TrimSpace(s[:37]) + "..."
	}
	return s
}
