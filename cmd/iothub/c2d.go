// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/internal/uuid"
	"github.com/iothubemulator/iothub/service"
)

// The c2d group, emulator only: cloud-to-device messages go through the
// service package's emulator-only API, since a real hub offers sending
// them over AMQP alone.

func init() { addGroup((*cli).c2dCommand) }

func (c *cli) c2dCommand() *cobra.Command {
	return group("c2d", "Cloud-to-device messages: send, read feedback (emulator only)",
		c.c2dSend(), c.c2dFeedback())
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

func (c *cli) c2dSend() *cobra.Command {
	var (
		m         service.C2DMessage
		body      string
		props     = properties{}
		validAcks = []string{service.AckNone, service.AckPositive, service.AckNegative, service.AckFull}
	)
	cmd := &cobra.Command{
		Use:   "send <device-id> --body TEXT",
		Short: "Queue a cloud-to-device message for a device and print its message id",
		Long: `Queue a cloud-to-device message for a device and print {"deviceId": ...,
"messageId": ...}; the message id is generated when --message-id is absent.

Emulator only: a real hub takes cloud-to-device messages over AMQP alone.`,
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
	f.DurationVar(&m.TTL, "ttl", 0, "time to live, whole seconds, at most 48h (default: the hub's, 1h)")
	f.Var(props, "property", "application property NAME=VALUE (repeatable)")
	f.StringVar(&m.MessageID, "message-id", "", "message id (default: a generated UUID)")
	f.StringVar(&m.CorrelationID, "correlation-id", "", "correlation id")
	f.StringVar(&m.UserID, "user-id", "", "user id")
	f.StringVar(&m.ContentType, "content-type", "", "content type of the body, e.g. application/json")
	f.StringVar(&m.ContentEncoding, "content-encoding", "", "content encoding of the body, e.g. utf-8")
	return cmd
}

func (c *cli) c2dFeedback() *cobra.Command {
	return &cobra.Command{
		Use:   "feedback",
		Short: "Print the delivery feedback of cloud-to-device messages (emulator only)",
		Args:  noArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			sc, err := c.service()
			if err != nil {
				return err
			}
			fb, err := sc.C2DFeedback(cmd.Context())
			if err != nil {
				return err
			}
			return c.printJSON(fb)
		}),
	}
}
