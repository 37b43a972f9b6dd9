// SPDX-License-Identifier: MIT

package main

import (
	"context"

	"github.com/spf13/cobra"
)

// The file-notification group: the hub's file-upload notifications,
// received over AMQP through the service package.

func init() { addGroup((*cli).fileNotificationCommand) }

func (c *cli) fileNotificationCommand() *cobra.Command {
	return group("file-notification", "File-upload notifications: receive them", c.fileNotificationReceive())
}

func (c *cli) fileNotificationReceive() *cobra.Command {
	var rf receiveFlags
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Receive the hub's file-upload notifications",
		Long: `Receive notifications of finished file uploads from the hub's queue and
print each on a line of its own (deviceId, blobUri, blobName,
lastUpdatedTime, blobSizeInBytes, enqueuedTimeUtc), until --count
notifications, --timeout or Ctrl-C. Each one is then settled as --settle
says: completed (removed from the queue) by default, abandoned (left for
the next reader; the command ends when one comes round again) or
rejected. The hub sends them when file upload
notifications are on for the hub (the emulator's are, by default).
` + amqpLong,
		Example: `  iothub file-notification receive --count 1 --timeout 5m`,
		Args:    noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(true); err != nil {
				return err
			}
			if err := c.checkAMQPFlags(); err != nil {
				return err
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			defer sc.Close()
			ctx, cancel := rf.context(cmd.Context())
			defer cancel()
			r := sc.FileNotificationReceiver()
			defer r.Close()
			out := c.lines()
			seen := map[string]bool{} // abandoned notifications come again
			for n := 0; !rf.done(n); n++ {
				fn, err := r.Receive(ctx)
				if stopped(ctx, err) {
					return nil
				}
				if err != nil {
					return err
				}
				key := fn.BlobURI + " " + fn.EnqueuedTime.String()
				if seen[key] {
					// Every notification has been read once.
					return r.Abandon(context.WithoutCancel(ctx), fn)
				}
				if rf.settle == "abandon" {
					seen[key] = true
				}
				if err := out.write(fn); err != nil {
					return err
				}
				sctx := context.WithoutCancel(ctx)
				switch rf.settle {
				case "abandon":
					err = r.Abandon(sctx, fn)
				case "reject":
					err = r.Reject(sctx, fn)
				default:
					err = r.Complete(sctx, fn)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}),
	}
	rf.register(cmd.Flags(), "notifications", true)
	c.amqpFlags(cmd.Flags())
	return cmd
}
