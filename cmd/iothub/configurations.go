// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	"github.com/iothubemulator/iothub/service"
)

// The configuration and digitaltwin groups: automatic device management
// and IoT Edge deployments, and Plug and Play digital twins, the
// counterparts of `az iot hub configuration`, `az iot edge set-modules` and
// `az iot hub digital-twin`.

func init() {
	addGroup((*cli).configurationCommand)
	addGroup((*cli).digitalTwinCommand)
}

func (c *cli) configurationCommand() *cobra.Command {
	return group("configuration", "Automatic device management configurations and IoT Edge deployments",
		c.leaf("create <id> --content JSON", "Create a configuration and print it", c.configurationCreate()),
		c.leaf("show <id>", "Print a configuration", c.configurationShow()),
		c.leaf("list", "Print the configurations as a JSON array", c.configurationList()),
		c.leaf("update <id>", "Change a configuration's target condition, priority, labels or metrics", c.configurationUpdate()),
		c.leaf("delete <id>", "Delete a configuration", c.configurationDelete()),
		c.leaf("test-queries", "Check a target condition and metric queries without creating anything", c.configurationTestQueries()),
		c.leaf("apply <edge-device-id> --content JSON", "Apply IoT Edge modules content to one edge device", c.configurationApply()),
	)
}

func (c *cli) digitalTwinCommand() *cobra.Command {
	return group("digitaltwin", "Plug and Play digital twins: show, update, invoke commands",
		c.leaf("show <id>", "Print a digital twin", c.digitalTwinShow()),
		c.leaf("update <id> --patch JSON", "Apply a JSON Patch to a digital twin", c.digitalTwinUpdate()),
		c.leaf("invoke <id> --command NAME", "Invoke a command of a digital twin (or one of its components)", c.digitalTwinInvoke()),
	)
}

// readContent reads --content: a ConfigurationContent
// ({"deviceContent": ...}), or, as az writes deployment manifests, one
// wrapped in {"content": ...}.
func (c *cli) readContent(v string) (*service.ConfigurationContent, error) {
	raw, err := c.readJSONArg("content", v)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Content *service.ConfigurationContent `json:"content"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Content != nil {
		return wrapped.Content, nil
	}
	var content service.ConfigurationContent
	if err := json.Unmarshal(raw, &content); err != nil {
		return nil, usagef("--content is not configuration content: %v", err)
	}
	return &content, nil
}

// readMetrics reads --metrics: {"queries": {name: query}}, as az takes it,
// or the plain {name: query} map.
func (c *cli) readMetrics(v string) (map[string]string, error) {
	raw, err := c.readJSONArg("metrics", v)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Queries map[string]string `json:"queries"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Queries != nil {
		return wrapped.Queries, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, usagef(`--metrics is not {"queries":{"name":"SELECT ..."}}: %v`, err)
	}
	return m, nil
}

func (c *cli) readLabels(v string) (map[string]string, error) {
	raw, err := c.readJSONArg("labels", v)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, usagef(`--labels is not {"name":"value"}: %v`, err)
	}
	return m, nil
}

// configurationFlags are the settable parts of a configuration. set tells
// which flags were given, so that update changes only those.
type configurationFlags struct {
	targetCondition, labels, metrics string
	priority                         int
	set                              map[string]bool
}

func (f *configurationFlags) declare(fs *flag.FlagSet) {
	fs.StringVar(&f.targetCondition, "target-condition", "", `twins to target, e.g. "tags.env='prod'", "*" or "FROM devices.modules WHERE ..."`)
	fs.IntVar(&f.priority, "priority", 0, "priority; where configurations overlap, the highest wins")
	fs.StringVar(&f.labels, "labels", "", `labels as JSON, e.g. {"version":"1.0"}`)
	fs.StringVar(&f.metrics, "metrics", "", `custom metric queries as JSON, @FILE or -: {"queries":{"name":"SELECT deviceId FROM devices WHERE ..."}}`)
}

// applyConfigurationFlags copies the flags given on the command line into
// cfg.
func (c *cli) applyConfigurationFlags(fs *flag.FlagSet, f *configurationFlags, cfg *service.Configuration) error {
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.set["target-condition"] {
		cfg.TargetCondition = f.targetCondition
	}
	if f.set["priority"] {
		cfg.Priority = f.priority
	}
	if f.set["labels"] {
		labels, err := c.readLabels(f.labels)
		if err != nil {
			return err
		}
		cfg.Labels = labels
	}
	if f.set["metrics"] {
		queries, err := c.readMetrics(f.metrics)
		if err != nil {
			return err
		}
		cfg.Metrics = service.ConfigurationMetrics{Queries: queries}
	}
	return nil
}

func (c *cli) configurationCreate() command {
	var (
		f       configurationFlags
		content string
		fs      *flag.FlagSet
	)
	return command{
		flags: func(s *flag.FlagSet) {
			fs = s
			f.declare(s)
			s.StringVar(&content, "content", "", `content as JSON, @FILE or -: {"deviceContent":{"properties.desired.x":...}} (or moduleContent, modulesContent)`)
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneArg(args, "configuration id")
			if err != nil {
				return err
			}
			cfg := &service.Configuration{ID: id}
			if content != "" {
				ct, err := c.readContent(content)
				if err != nil {
					return err
				}
				cfg.Content = *ct
			}
			if err := c.applyConfigurationFlags(fs, &f, cfg); err != nil {
				return err
			}
			out, err := sc.CreateConfiguration(ctx, cfg)
			if err != nil {
				return err
			}
			return c.printJSON(out)
		},
	}
}

func (c *cli) configurationShow() command {
	return command{
		flags: func(*flag.FlagSet) {},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneArg(args, "configuration id")
			if err != nil {
				return err
			}
			out, err := sc.GetConfiguration(ctx, id)
			if err != nil {
				return err
			}
			return c.printJSON(out)
		},
	}
}

func (c *cli) configurationList() command {
	var top int
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&top, "top", 0, "maximum number of configurations (default: all)")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			if len(args) != 0 {
				return usagef("configuration list takes no arguments")
			}
			if top < 0 {
				return usagef("--top must not be negative")
			}
			out, err := sc.ListConfigurations(ctx, top)
			if err != nil {
				return err
			}
			if out == nil {
				out = []*service.Configuration{}
			}
			return c.printJSON(out)
		},
	}
}

func (c *cli) configurationUpdate() command {
	var (
		f    configurationFlags
		etag string
		fs   *flag.FlagSet
	)
	return command{
		flags: func(s *flag.FlagSet) {
			fs = s
			f.declare(s)
			s.StringVar(&etag, "etag", "", "update only if the configuration still has this etag (default: the etag read just before)")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneArg(args, "configuration id")
			if err != nil {
				return err
			}
			changes := false
			fs.Visit(func(fl *flag.Flag) {
				switch fl.Name {
				case "target-condition", "priority", "labels", "metrics":
					changes = true
				}
			})
			if !changes {
				return usagef("configuration update needs at least one of --target-condition, --priority, --labels, --metrics")
			}
			// The hub replaces the changeable parts: read the rest first,
			// as az iot hub configuration update --set does.
			cfg, err := sc.GetConfiguration(ctx, id)
			if err != nil {
				return err
			}
			if etag != "" {
				cfg.ETag = etag
			}
			if err := c.applyConfigurationFlags(fs, &f, cfg); err != nil {
				return err
			}
			out, err := sc.UpdateConfiguration(ctx, cfg)
			if err != nil {
				return err
			}
			return c.printJSON(out)
		},
	}
}

func (c *cli) configurationDelete() command {
	var etag string
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&etag, "etag", "", "delete only if the configuration still has this etag")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneArg(args, "configuration id")
			if err != nil {
				return err
			}
			return sc.DeleteConfiguration(ctx, id, etag)
		},
	}
}

func (c *cli) configurationTestQueries() command {
	var condition, metrics string
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&condition, "target-condition", "", "target condition to check")
			fs.StringVar(&metrics, "metrics", "", `custom metric queries to check, as for configuration create`)
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			if len(args) != 0 {
				return usagef("configuration test-queries takes no arguments")
			}
			var queries map[string]string
			if metrics != "" {
				var err error
				if queries, err = c.readMetrics(metrics); err != nil {
					return err
				}
			}
			out, err := sc.TestConfigurationQueries(ctx, condition, queries)
			if err != nil {
				return err
			}
			return c.printJSON(out)
		},
	}
}

func (c *cli) configurationApply() command {
	var content string
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&content, "content", "", `IoT Edge modules content as JSON, @FILE or -: {"modulesContent":{"$edgeAgent":{"properties.desired":...},...}}`)
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			if content == "" {
				return usagef("configuration apply needs --content")
			}
			ct, err := c.readContent(content)
			if err != nil {
				return err
			}
			return sc.ApplyConfigurationContent(ctx, id, ct)
		},
	}
}

func (c *cli) digitalTwinShow() command {
	return command{
		flags: func(*flag.FlagSet) {},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			dt, err := sc.GetDigitalTwin(ctx, id)
			if err != nil {
				return err
			}
			return c.printJSON(dt.Raw)
		},
	}
}

func (c *cli) digitalTwinUpdate() command {
	var patch, etag string
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&patch, "patch", "", `JSON Patch as JSON, @FILE or -: [{"op":"add","path":"/thermostat1/targetTemperature","value":21}]`)
			fs.StringVar(&etag, "etag", "", "update only if the twin still has this etag")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			if patch == "" {
				return usagef("digitaltwin update needs --patch")
			}
			raw, err := c.readJSONArg("patch", patch)
			if err != nil {
				return err
			}
			var ops []service.DigitalTwinOperation
			if err := json.Unmarshal(raw, &ops); err != nil {
				return usagef("--patch is not a JSON Patch array of operations: %v", err)
			}
			newETag, err := sc.UpdateDigitalTwin(ctx, id, ops, etag)
			if err != nil {
				return err
			}
			return c.printJSON(struct {
				ETag string `json:"etag"`
			}{newETag})
		},
	}
}

func (c *cli) digitalTwinInvoke() command {
	var (
		component, name, payload string
		timeout, connectTimeout  time.Duration
	)
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "command", "", "command name")
			fs.StringVar(&component, "component", "", "component whose command it is (default: the root component)")
			fs.StringVar(&payload, "payload", "", "payload as JSON, @FILE or - for stdin (default: none)")
			fs.DurationVar(&timeout, "timeout", service.DefaultMethodResponseTimeout, "how long the hub waits for the device's answer (5s-300s)")
			fs.DurationVar(&connectTimeout, "connect-timeout", 0, "how long the hub waits for the device to connect")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneID(args)
			if err != nil {
				return err
			}
			if name == "" {
				return usagef("digitaltwin invoke needs --command")
			}
			cmd := service.Command{Component: component, Name: name, ResponseTimeout: timeout, ConnectTimeout: connectTimeout}
			if payload != "" {
				if cmd.Payload, err = c.readJSONArg("payload", payload); err != nil {
					return err
				}
			}
			res, err := sc.InvokeCommand(ctx, id, cmd)
			if err != nil {
				return err
			}
			return c.printJSON(struct {
				Status    int             `json:"status"`
				Payload   json.RawMessage `json:"payload"`
				RequestID string          `json:"requestId"`
			}{res.Status, res.Payload, res.RequestID})
		},
	}
}

// oneArg checks that args is exactly one non-empty argument.
func oneArg(args []string, what string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usagef("want exactly one %s, got %d arguments", what, len(args))
	}
	return args[0], nil
}
