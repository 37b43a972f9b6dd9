// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/internal/uuid"
	"github.com/iothubemulator/iothub/service"
)

// The c2d group: cloud-to-device messages sent over AMQP, their delivery
// feedback read over AMQP (or HTTPS), and the purge of a device's queue,
// all through the service package, so they work against a real hub.

func init() { addGroup((*cli).c2dCommand) }

func (c *cli) c2dCommand() *cobra.Command {
	return group("c2d", "Cloud-to-device messages: send, receive their feedback, purge a device's queue",
		c.c2dSend(), c.c2dFeedback(), c.c2dPurge())
}

// properties collects repeated --property NAME=VALUE flags.
type properties map[string]string

func (p properties) String() string { return "" }
func (p properties) Type() string   { return "NAME=VALUE" }

func (p properties) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	p[k] = val
	return nil
}

// checkAMQPFlags refuses flags that contradict each other.
func (c *cli) checkAMQPFlags() error {
	if c.amqpWebSockets && c.amqpAddr != "" {
		return usagef("give --websockets or --amqp-addr, not both")
	}
	return nil
}

func (c *cli) c2dSend() *cobra.Command {
	var (
		m         service.C2DMessage
		body      string
		props     = properties{}
		validAcks = []string{service.AckNone, service.AckPositive, service.AckNegative, service.AckFull}
	)
	cmd := &cobra.Command{
		Use:   "send <device-id> --body TEXT",
		Short: "Send a cloud-to-device message to a device and print its message id",
		Long: `Queue a cloud-to-device message for a device and print {"deviceId": ...,
"messageId": ...} once the hub has accepted it; the message id is
generated when --message-id is absent. With --ack, the hub reports the
delivery outcome as feedback (iothub c2d feedback).
` + amqpLong,
		Example: `  iothub c2d send myDevice --body 'hello' --ack full --property k=v`,
		Args:    exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("body") {
				return usagef("c2d send needs --body")
			}
			if m.Ack != "" && !slices.Contains(validAcks, m.Ack) {
				return usagef("--ack must be one of %s", strings.Join(validAcks, ", "))
			}
			if m.TTL < 0 {
				return usagef("--ttl must not be negative")
			}
			if err := c.checkAMQPFlags(); err != nil {
				return err
			}
			var err error
			if m.Body, err = c.readArg("body", body); err != nil {
				return err
			}
			// Feedback names the message by its id, so a message always
			// gets one, as the Azure CLI does.
			if !cmd.Flags().Changed("message-id") {
				m.MessageID = uuid.New()
			}
			if len(props) > 0 {
				m.Properties = props
			}
			sc, err := c.service()
			if err != nil {
				return err
			}
			defer sc.Close()
			if err := sc.SendC2D(cmd.Context(), args[0], &m); err != nil {
				return err
			}
			return c.printJSON(struct {
				DeviceID  string `json:"deviceId"`
				MessageID string `json:"messageId"`
			}{args[0], m.MessageID})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&body, "body", "", "payload: TEXT, @FILE or - for stdin (required; may be empty)")
	f.StringVar(&m.Ack, "ack", "", "feedback to ask for: none, positive, negative or full (default none)")
	f.DurationVar(&m.TTL, "ttl", 0, "time to live, at most 48h (default: the hub's, 1h)")
	f.Var(props, "property", "application property NAME=VALUE (repeatable)")
	f.StringVar(&m.MessageID, "message-id", "", "message id (default: a generated UUID)")
	f.StringVar(&m.CorrelationID, "correlation-id", "", "correlation id")
	f.StringVar(&m.UserID, "user-id", "", "user id")
	f.StringVar(&m.ContentType, "content-type", "", "content type of the body, e.g. application/json")
	f.StringVar(&m.ContentEncoding, "content-encoding", "", "content encoding of the body, e.g. utf-8")
	c.amqpFlags(f)
	return cmd
}

// feedbackRecord is the line c2d feedback prints for one record: the
// hub's record and the batch it came in.
type feedbackRecord struct {
	service.Feedback
	BatchMessageID string `json:"batchMessageId,omitempty"`
}

func (c *cli) c2dFeedback() *cobra.Command {
	var (
		rf       receiveFlags
		waitOnID string
		https    bool
	)
	cmd := &cobra.Command{
		Use:   "feedback",
		Short: "Receive the delivery feedback of cloud-to-device messages",
		Long: `Receive delivery feedback from the hub's feedback queue and print each record
on a line of its own (originalMessageId, deviceId, deviceGenerationId,
enqueuedTimeUtc, statusCode, description, batchMessageId), until --count
records, --wait-on-id's record, --timeout or Ctrl-C. Each batch received
is then settled as --settle says: completed (removed from the queue) by
default, abandoned (left for the next reader; the command ends when a
batch comes round again) or rejected.

The hub keeps feedback for messages sent with --ack; it may hold records
for up to a minute before it sends them in one batch. --https reads the
queue over HTTPS (GET /messages/serviceBound/feedback) instead of AMQP and
ends when the queue is empty.
` + amqpLong,
		Example: `  iothub c2d send myDevice --body on --ack full --message-id m1
  iothub c2d feedback --wait-on-id m1 --timeout 2m`,
		Args: noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := rf.check(true); err != nil {
				return err
			}
			if https && (c.amqpWebSockets || c.amqpAddr != "") {
				return usagef("--https reads over HTTPS; --websockets and --amqp-addr are for AMQP")
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
			out := c.lines()
			n := 0
			// emit writes b's records and reports whether to stop.
			emit := func(b *service.FeedbackBatch) (bool, error) {
				stop := false
				for _, rec := range b.Records {
					if err := out.write(feedbackRecord{rec, b.MessageID}); err != nil {
						return true, err
					}
					n++
					stop = stop || rf.done(n) || (waitOnID != "" && rec.OriginalMessageID == waitOnID)
				}
				return stop, nil
			}
			if https {
				return c.feedbackHTTPS(ctx, sc, &rf, emit)
			}
			r := sc.FeedbackReceiver()
			defer r.Close()
			seen := map[string]bool{} // abandoned batches come again
			for {
				b, err := r.Receive(ctx)
				if stopped(ctx, err) {
					return nil
				}
				if err != nil {
					return err
				}
				if seen[b.MessageID] {
					// Every batch has been read once: the queue went round.
					return r.Abandon(context.WithoutCancel(ctx), b)
				}
				if rf.settle == "abandon" {
					seen[b.MessageID] = true
				}
				stop, err := emit(b)
				if err != nil {
					return err
				}
				// The settlement outlives --timeout: the batch was printed.
				sctx := context.WithoutCancel(ctx)
				switch rf.settle {
				case "abandon":
					err = r.Abandon(sctx, b)
				case "reject":
					err = r.Reject(sctx, b)
				default:
					err = r.Complete(sctx, b)
				}
				if err != nil || stop {
					return err
				}
			}
		}),
	}
	f := cmd.Flags()
	rf.register(f, "records", true)
	f.StringVar(&waitOnID, "wait-on-id", "", "stop after the record for this cloud-to-device message id")
	f.BoolVar(&https, "https", false, "read the queue over HTTPS instead of AMQP, until it is empty")
	c.amqpFlags(f)
	return cmd
}

// feedbackHTTPS reads the feedback queue over HTTPS until it is empty.
func (c *cli) feedbackHTTPS(ctx context.Context, sc *service.Client, rf *receiveFlags, emit func(*service.FeedbackBatch) (bool, error)) error {
	if rf.settle == "reject" {
		return usagef("--https cannot reject: the hub's HTTPS feedback API completes or abandons")
	}
	var abandoned []string
	defer func() {
		// Abandoned batches are released only now, so that the loop does
		// not receive them again.
		for _, lock := range abandoned {
			_ = sc.AbandonFeedback(context.WithoutCancel(ctx), lock)
		}
	}()
	for {
		b, err := sc.ReceiveFeedback(ctx)
		if stopped(ctx, err) || (err == nil && b == nil) {
			return nil
		}
		if err != nil {
			return err
		}
		stop, err := emit(b)
		if err != nil {
			return err
		}
		if rf.settle == "abandon" {
			abandoned = append(abandoned, b.LockToken)
		} else if err := sc.CompleteFeedback(context.WithoutCancel(ctx), b.LockToken); err != nil {
			return err
		}
		if stop {
			return nil
		}
	}
}

func (c *cli) c2dPurge() *cobra.Command {
	return &cobra.Command{
		Use:   "purge <device-id>",
		Short: "Delete every cloud-to-device message queued for a device",
		Long: `Delete every cloud-to-device message queued for a device (DELETE
/devices/{id}/commands) and print {"deviceId": ..., "totalMessagesPurged": N}.
Messages sent with --ack negative or full report Purged feedback.`,
		Example: `  iothub c2d purge myDevice`,
		Args:    exactArgs("device id"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			res, err := sc.PurgeC2DQueue(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return c.printJSON(res)
		}),
	}
}
