// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	"github.com/iothubemulator/iothub/service"
)

// The job command group (az iot hub job create|show|list|cancel): jobs v2,
// twin updates and direct methods scheduled on the devices a condition
// selects.

func init() { addGroup((*cli).jobCommand) }

func (c *cli) jobCommand() *cobra.Command {
	return group("job", "Jobs: twin updates and direct methods scheduled on the devices a query selects",
		c.leaf("create <job-id> --type scheduleUpdateTwin|scheduleDeviceMethod --query CONDITION",
			"Schedule a twin update (--patch) or a direct method (--name) on the devices --query selects", c.jobCreate()),
		c.leaf("show <job-id>", "Print a job", c.jobShow()),
		c.leaf("list", "Print the jobs as a JSON array", c.jobList()),
		c.leaf("cancel <job-id>", "Cancel a job and print it", c.jobCancel()),
		c.leaf("devices <job-id>", "Print a job's per-device records", c.jobDevices()),
	)
}

// oneJobID checks that args is exactly one job id.
func oneJobID(args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usagef("want exactly one job id, got %d arguments", len(args))
	}
	return args[0], nil
}

func (c *cli) jobCreate() command {
	var (
		typ, cond, patch, name, payload, start string
		timeout, connectTimeout, maxExec, poll time.Duration
		wait                                   bool
	)
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&typ, "type", "", "scheduleUpdateTwin or scheduleDeviceMethod")
			fs.StringVar(&cond, "query", "", `the devices: a condition over their twins, e.g. "tags.site = 'B7'" or "deviceId IN ['a','b']", or * for all`)
			fs.StringVar(&patch, "patch", "", `twin patch as JSON, @FILE or - for stdin, e.g. {"tags":{...},"properties":{"desired":{...}}}`)
			fs.StringVar(&name, "name", "", "method name")
			fs.StringVar(&payload, "payload", "", "method payload as JSON, @FILE or - for stdin (default null)")
			fs.DurationVar(&timeout, "timeout", service.DefaultMethodResponseTimeout, "how long the hub waits for each device's answer (5s-300s)")
			fs.DurationVar(&connectTimeout, "connect-timeout", 0, "how long the hub waits for each device to connect")
			fs.StringVar(&start, "start", "", "start time, RFC 3339 (2024-05-02T10:00:00Z) or a duration from now (10m); default now")
			fs.DurationVar(&maxExec, "max-execution", service.DefaultJobExecutionTime, "maximum execution time; devices not done by then fail")
			fs.BoolVar(&wait, "wait", false, "wait until the job has ended and print it then")
			fs.DurationVar(&poll, "poll-interval", time.Second, "with --wait, how often to ask the hub")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneJobID(args)
			if err != nil {
				return err
			}
			if cond == "" {
				return usagef("job create needs --query (a condition such as \"deviceId = 'dev1'\", or *)")
			}
			if maxExec <= 0 {
				return usagef("--max-execution must be positive")
			}
			s := service.JobSchedule{JobID: id, QueryCondition: cond, MaxExecutionTime: maxExec}
			if s.StartTime, err = parseStart(start, time.Now()); err != nil {
				return err
			}
			var j *service.Job
			switch service.JobType(typ) {
			case service.JobTypeUpdateTwin:
				if patch == "" || name != "" || payload != "" {
					return usagef("a scheduleUpdateTwin job needs --patch and takes no --name or --payload")
				}
				p, err := c.readTwinPatch(patch)
				if err != nil {
					return err
				}
				j, err = sc.ScheduleTwinUpdate(ctx, s, p)
				if err != nil {
					return err
				}
			case service.JobTypeDeviceMethod:
				if name == "" || patch != "" {
					return usagef("a scheduleDeviceMethod job needs --name and takes no --patch")
				}
				m := service.MethodCall{Name: name, ResponseTimeout: timeout, ConnectTimeout: connectTimeout}
				if payload != "" {
					if m.Payload, err = c.readJSONArg("payload", payload); err != nil {
						return err
					}
				}
				j, err = sc.ScheduleDeviceMethod(ctx, s, m)
				if err != nil {
					return err
				}
			default:
				return usagef("--type must be scheduleUpdateTwin or scheduleDeviceMethod, got %q", typ)
			}
			if wait {
				if j, err = sc.WaitJob(ctx, id, poll); err != nil {
					return err
				}
			}
			return c.printJSON(j)
		},
	}
}

// parseStart reads --start: an RFC 3339 time, or a duration after now.
func parseStart(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, usagef("--start %q is neither an RFC 3339 time (2024-05-02T10:00:00Z) nor a duration (10m)", s)
}

// readTwinPatch reads a twin patch flag and refuses what the hub would
// drop: desired or reported outside "properties".
func (c *cli) readTwinPatch(v string) (*service.Twin, error) {
	raw, err := c.readJSONArg("patch", v)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, usagef("--patch is not a JSON object: %v", err)
	}
	for _, k := range []string{"desired", "reported"} {
		if _, ok := top[k]; ok {
			return nil, usagef(`--patch has %q at the top; it belongs in "properties": {"properties":{"%s":{...}}}`, k, k)
		}
	}
	var p service.Twin
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, usagef("--patch is not a twin patch: %v", err)
	}
	return &p, nil
}

func (c *cli) jobShow() command {
	return command{
		flags: func(*flag.FlagSet) {},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneJobID(args)
			if err != nil {
				return err
			}
			j, err := sc.GetJob(ctx, id)
			if err != nil {
				return err
			}
			return c.printJSON(j)
		},
	}
}

func (c *cli) jobCancel() command {
	return command{
		flags: func(*flag.FlagSet) {},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneJobID(args)
			if err != nil {
				return err
			}
			j, err := sc.CancelJob(ctx, id)
			if err != nil {
				return err
			}
			return c.printJSON(j)
		},
	}
}

func (c *cli) jobList() command {
	var typ, status string
	var pageSize int
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&typ, "type", "", "only jobs of this type: scheduleUpdateTwin or scheduleDeviceMethod")
			fs.StringVar(&status, "status", "", "only jobs in this status: queued, scheduled, running, completed, failed or cancelled")
			fs.IntVar(&pageSize, "page-size", 0, "jobs per request (default: the hub's choice)")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			if len(args) != 0 {
				return usagef("job list takes no arguments")
			}
			jobs := []*service.Job{}
			for j, err := range sc.QueryJobs(service.JobType(typ), service.JobStatus(status), pageSize).Jobs(ctx) {
				if err != nil {
					return err
				}
				jobs = append(jobs, j)
			}
			return c.printJSON(jobs)
		},
	}
}

// jobDevices prints a job's per-device records (SELECT * FROM devices.jobs).
func (c *cli) jobDevices() command {
	var status string
	return command{
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&status, "status", "", "only devices in this status: pending, running, completed, failed or canceled")
		},
		run: func(ctx context.Context, sc *service.Client, args []string) error {
			id, err := oneJobID(args)
			if err != nil {
				return err
			}
			// Job ids hold only letters, digits and '-' (the hub refuses
			// others), so quoting cannot break the condition.
			if strings.ContainsAny(id, `'"\`) || strings.ContainsAny(status, `'"\`) {
				return usagef("job ids and statuses contain no quotes")
			}
			cond := "devices.jobs.jobId = '" + id + "'"
			if status != "" {
				cond += " AND devices.jobs.status = '" + status + "'"
			}
			rows := []*service.DeviceJob{}
			for d, err := range sc.QueryDeviceJobs(cond, 0).DeviceJobs(ctx) {
				if err != nil {
					return err
				}
				rows = append(rows, d)
			}
			return c.printJSON(rows)
		},
	}
}
