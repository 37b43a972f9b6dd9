// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/uuid"
	"github.com/iothubemulator/iothub/service"
)

// The device-side commands of the device group: send, listen and report
// connect as the device itself (MQTT, through the device package), so that
// a hub can be tried without writing device code.

// deviceSideLong is the part of each device-side command's help that says
// where the device's credentials come from.
const deviceSideLong = `
The command connects as the device, over MQTT (port 8883; --websockets for
MQTT over WebSockets on 443). Its credentials come from
--device-connection-string or IOTHUB_DEVICE_CONNECTION_STRING when that
names this device (or when no device id is given); otherwise the device's
key is read from the registry with the service connection string, as az
iot device does. The hub's certificate is checked against --ca-file or
IOTHUB_CA_FILE, as for the service commands.`

// deviceSideFlags are the flags every device-side command accepts.
type deviceSideFlags struct {
	connectionString string
	module           string
	deviceHost       string
	webSockets       bool
}

func (d *deviceSideFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&d.connectionString, "device-connection-string", "", "the device's (or module's) connection string (default $IOTHUB_DEVICE_CONNECTION_STRING when it names this device)")
	f.StringVar(&d.module, "module", "", "act as this module of the device")
	f.StringVar(&d.deviceHost, "device-host", "", "host[:port] to connect to when the credentials come from the registry (default: the hub host; with --websockets, the service connection string's host:port)")
	f.BoolVar(&d.webSockets, "websockets", false, "connect with MQTT over WebSockets (port 443) instead of MQTT over TLS (8883)")
}

// connect returns a connected device client for the command line's device.
// args holds at most the device id.
func (c *cli) connectDevice(ctx context.Context, d *deviceSideFlags, args []string, prepare func(*device.Client)) (*device.Client, error) {
	cs, err := c.deviceConnectionString(ctx, d, args)
	if err != nil {
		return nil, err
	}
	opts := []device.Option{}
	pool, err := c.rootCAs()
	if err != nil {
		return nil, err
	}
	if pool != nil {
		opts = append(opts, device.WithRootCAs(pool))
	}
	if d.webSockets {
		opts = append(opts, device.WithWebSockets())
	}
	dc, err := device.NewFromConnectionString(cs, opts...)
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		prepare(dc)
	}
	if err := dc.Connect(ctx); err != nil {
		dc.Close()
		return nil, err
	}
	return dc, nil
}

func (c *cli) deviceConnectionString(ctx context.Context, d *deviceSideFlags, args []string) (string, error) {
	explicit := d.connectionString != ""
	cs := d.connectionString
	if !explicit {
		cs = c.getenv("IOTHUB_DEVICE_CONNECTION_STRING")
	}
	if cs != "" {
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			if explicit || len(args) == 0 {
				return "", usagef("device connection string: %v", err)
			}
		} else if len(args) == 0 || (parsed.DeviceID == args[0] && parsed.ModuleID == d.module) {
			return cs, nil
		} else if explicit {
			return "", usagef("--device-connection-string is for %s, not %s", identityName(parsed.DeviceID, parsed.ModuleID), identityName(args[0], d.module))
		}
		// IOTHUB_DEVICE_CONNECTION_STRING names another device: look this
		// one up instead.
	}
	if len(args) == 0 {
		return "", usagef("give a device id, or the device's connection string with --device-connection-string or IOTHUB_DEVICE_CONNECTION_STRING")
	}
	sc, err := c.service()
	if err != nil {
		return "", err
	}
	host := d.deviceHost
	switch {
	case host != "":
	case d.webSockets:
		// MQTT over WebSockets shares the HTTPS port with the REST API.
		host = sc.HostName()
	default:
		host = withoutPort(sc.HostName())
	}
	if d.module != "" {
		m, err := sc.GetModule(ctx, args[0], d.module)
		if err != nil {
			return "", err
		}
		if isX509(m.Authentication) {
			return "", fmt.Errorf("module %s/%s authenticates with an X.509 certificate, which this command cannot present; use a SAS identity", args[0], d.module)
		}
		return service.ModuleConnectionString(host, m)
	}
	dev, err := sc.GetDevice(ctx, args[0])
	if err != nil {
		return "", err
	}
	if isX509(dev.Authentication) {
		return "", fmt.Errorf("device %s authenticates with an X.509 certificate, which this command cannot present; use a SAS device", args[0])
	}
	return service.DeviceConnectionString(host, dev)
}

func isX509(a *service.AuthenticationMechanism) bool {
	return a != nil && (a.Type == service.AuthSelfSigned || a.Type == service.AuthCertificateAuthority)
}

func identityName(deviceID, moduleID string) string {
	if moduleID != "" {
		return deviceID + "/" + moduleID
	}
	return deviceID
}

// optionalID accepts no argument or the device id.
func optionalID(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return usagef("%s takes at most one argument, the device id, got %d", path(cmd), len(args))
	}
	if len(args) == 1 && args[0] == "" {
		return usagef("%s: the device id must not be empty", path(cmd))
	}
	return nil
}

func (c *cli) deviceSend() *cobra.Command {
	var (
		d        deviceSideFlags
		body     string
		props    = properties{}
		m        device.Message
		count    int
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send [<device-id>] --body TEXT",
		Short: "Send device-to-cloud messages (telemetry) as the device",
		Long: `Send device-to-cloud messages as the device and print {"deviceId": ...,
"messageId": ...} for each, one per line; the message id is generated when --message-id
is absent. With --count, the same body is sent that many times, --interval
apart.
` + deviceSideLong,
		Example: `  iothub device send myDevice --body '{"temperature":21.5}' --content-type application/json --content-encoding utf-8
  iothub device send myDevice --body @reading.json --property alert=high --count 10 --interval 1s`,
		Args: optionalID,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("body") {
				return usagef("device send needs --body")
			}
			if count < 1 {
				return usagef("--count must be at least 1")
			}
			if interval < 0 {
				return usagef("--interval must not be negative")
			}
			var err error
			if m.Body, err = c.readArg("body", body); err != nil {
				return err
			}
			if len(props) > 0 {
				m.Properties = props
			}
			ctx := cmd.Context()
			dc, err := c.connectDevice(ctx, &d, args, nil)
			if err != nil {
				return err
			}
			defer dc.Close()
			fixedID := cmd.Flags().Changed("message-id")
			enc := json.NewEncoder(c.stdout) // one line per message
			enc.SetEscapeHTML(false)
			for i := range count {
				if i > 0 && interval > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(interval):
					}
				}
				msg := m
				if !fixedID {
					msg.MessageID = uuid.New()
				}
				if err := dc.SendMessage(ctx, &msg); err != nil {
					return err
				}
				if err := enc.Encode(sent{DeviceID: dc.DeviceID(), ModuleID: dc.ModuleID(), MessageID: msg.MessageID}); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	d.register(cmd)
	f := cmd.Flags()
	f.StringVar(&body, "body", "", "payload: TEXT, @FILE or - for stdin (required; may be empty)")
	f.Var(props, "property", "application property NAME=VALUE (repeatable)")
	f.StringVar(&m.MessageID, "message-id", "", "message id (default: a generated UUID per message)")
	f.StringVar(&m.CorrelationID, "correlation-id", "", "correlation id")
	f.StringVar(&m.ContentType, "content-type", "", "content type of the body, e.g. application/json (lets hub routing read it)")
	f.StringVar(&m.ContentEncoding, "content-encoding", "", "content encoding of the body, e.g. utf-8 (lets hub routing read it)")
	f.StringVar(&m.OutputName, "output", "", "output name, for a module (edge routing)")
	f.IntVar(&count, "count", 1, "number of messages to send")
	f.DurationVar(&interval, "interval", 0, "wait between messages")
	return cmd
}

// sent is what device send prints per message.
type sent struct {
	DeviceID  string `json:"deviceId"`
	ModuleID  string `json:"moduleId,omitempty"`
	MessageID string `json:"messageId"`
}

func (c *cli) deviceReport() *cobra.Command {
	var (
		d     deviceSideFlags
		patch string
	)
	cmd := &cobra.Command{
		Use:   "report [<device-id>] --patch JSON",
		Short: "Update the device's reported properties as the device",
		Long: `Patch the twin's reported properties as the device, and print
{"version": N}, the reported properties' new version. A member set to null
is deleted. The patch may be JSON, @FILE or - for standard input.
` + deviceSideLong,
		Example: `  iothub device report myDevice --patch '{"firmware":"1.2.0","temperature":21.5}'`,
		Args:    optionalID,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if patch == "" {
				return usagef("device report needs --patch")
			}
			raw, err := c.readJSONArg("patch", patch)
			if err != nil {
				return err
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil || obj == nil {
				return usagef(`--patch must be a JSON object of reported properties, e.g. {"firmware":"1.2.0"}`)
			}
			if _, ok := obj["properties"]; ok {
				return usagef(`--patch is the reported properties themselves, without a "properties" or "reported" wrapper`)
			}
			ctx := cmd.Context()
			dc, err := c.connectDevice(ctx, &d, args, nil)
			if err != nil {
				return err
			}
			defer dc.Close()
			v, err := dc.UpdateReportedProperties(ctx, raw)
			if err != nil {
				return err
			}
			return c.printJSON(map[string]int64{"version": v})
		}),
	}
	d.register(cmd)
	cmd.Flags().StringVar(&patch, "patch", "", `reported properties to patch, a JSON object, e.g. {"firmware":"1.2.0"}`)
	return cmd
}

func (c *cli) deviceListen() *cobra.Command {
	var (
		d             deviceSideFlags
		methodStatus  int
		methodPayload string
		count         int
		timeout       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "listen [<device-id>]",
		Short: "Act as the device: print what the hub sends it, answer its direct methods",
		Long: `Connect as the device and print, one JSON object per line, what the hub
sends it: {"event":"connected"} once connected and subscribed, then
"c2d" (a cloud-to-device message), "method" (a direct method call, with the
response sent) and "desired" (a desired-properties patch). Every direct
method is answered with --method-status and --method-payload. It runs until
--count events, --timeout or Ctrl-C.
` + deviceSideLong,
		Example: `  iothub device listen myDevice --method-status 200 --method-payload '{"result":"ok"}'
  iothub device listen myDevice --count 1 --timeout 1m &
  iothub method invoke myDevice --name reboot --connect-timeout 30s`,
		Args: optionalID,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if count < 0 || timeout < 0 {
				return usagef("--count and --timeout must not be negative")
			}
			if methodStatus < 100 || methodStatus > 999 {
				return usagef("--method-status must be a three-digit status, e.g. 200")
			}
			response := json.RawMessage("null")
			if methodPayload != "" {
				var err error
				if response, err = c.readJSONArg("method-payload", methodPayload); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			l := newListener()
			defer l.stop()
			dc, err := c.connectDevice(ctx, &d, args, l.prepare)
			if err != nil {
				if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("not connected within --timeout %v: %w", timeout, err)
				}
				return err
			}
			defer dc.Close()
			go l.answerMethods(ctx, dc, methodStatus, response)
			return l.print(ctx, c, dc, count)
		}),
	}
	d.register(cmd)
	f := cmd.Flags()
	f.IntVar(&methodStatus, "method-status", 200, "status every direct method is answered with")
	f.StringVar(&methodPayload, "method-payload", "", "payload every direct method is answered with: JSON, @FILE or - (default null)")
	f.IntVar(&count, "count", 0, "stop after this many events (default: run until --timeout or Ctrl-C)")
	f.DurationVar(&timeout, "timeout", 0, "stop after this long (default: run until interrupted)")
	return cmd
}

// listener collects what the hub sends the device and hands it, in
// arrival order, to the printing loop.
type listener struct {
	events chan any
	done   chan struct{}
	once   sync.Once
	lost   chan error // the client gave up reconnecting
}

func newListener() *listener {
	return &listener{events: make(chan any), done: make(chan struct{}), lost: make(chan error, 1)}
}

func (l *listener) stop() { l.once.Do(func() { close(l.done) }) }

// emit hands ev to the printing loop, unless it has stopped.
func (l *listener) emit(ev any) bool {
	select {
	case l.events <- ev:
		return true
	case <-l.done:
		return false
	}
}

// prepare registers everything before Connect, so that the subscriptions
// are in place when "connected" is printed: a caller that waits for that
// line can invoke a method at once.
func (l *listener) prepare(dc *device.Client) {
	dc.OnMessage(func(m *device.Message) { l.emit(c2dEventOf(m)) })
	dc.OnDesiredPropertiesUpdate(func(p device.Properties, v int64) {
		l.emit(desiredEvent{Event: "desired", Version: v, Patch: p})
	})
	// Claim the method requests now (a receive with a context that has
	// already ended only subscribes), and answer them in answerMethods,
	// which sends the response before the event is printed.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = dc.ReceiveMethodRequest(done, "")
	dc.OnConnectionStateChange(func(st device.ConnectionState, err error) {
		if st == device.StateDisconnected && err != nil {
			select {
			case l.lost <- err:
			default:
			}
		}
	})
}

func (l *listener) answerMethods(ctx context.Context, dc *device.Client, status int, payload json.RawMessage) {
	for {
		req, err := dc.ReceiveMethodRequest(ctx, "")
		if err != nil {
			return
		}
		ev := methodEvent{Event: "method", Name: req.Name, RequestID: req.RequestID, Payload: req.Payload, Status: status, Response: payload}
		if err := dc.SendMethodResponse(ctx, device.NewMethodResponse(req, status, payload)); err != nil {
			ev.Error = err.Error()
		}
		if !l.emit(ev) {
			return
		}
	}
}

// print writes the events until count of them, the end of ctx (Ctrl-C or
// --timeout, a normal end) or the loss of the connection (a failure).
func (l *listener) print(ctx context.Context, c *cli, dc *device.Client, count int) error {
	defer l.stop()
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(connectedEvent{Event: "connected", DeviceID: dc.DeviceID(), ModuleID: dc.ModuleID()}); err != nil {
		return err
	}
	for n := 0; count == 0 || n < count; n++ {
		select {
		case ev := <-l.events:
			if err := enc.Encode(ev); err != nil {
				return err
			}
		case err := <-l.lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

type connectedEvent struct {
	Event    string `json:"event"`
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
}

type methodEvent struct {
	Event     string          `json:"event"`
	Name      string          `json:"name"`
	RequestID string          `json:"requestId"`
	Payload   json.RawMessage `json:"payload"`
	Status    int             `json:"status"`
	Response  json.RawMessage `json:"response"`
	Error     string          `json:"error,omitempty"` // the response could not be sent
}

type desiredEvent struct {
	Event   string            `json:"event"`
	Version int64             `json:"version"`
	Patch   device.Properties `json:"patch"`
}

type c2dEvent struct {
	Event           string            `json:"event"`
	MessageID       string            `json:"messageId,omitempty"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	To              string            `json:"to,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Ack             string            `json:"ack,omitempty"`
	ExpiryTime      *time.Time        `json:"expiryTimeUtc,omitempty"`
	Properties      map[string]string `json:"properties"`
	Body            string            `json:"body"`
	BodyEncoding    string            `json:"bodyEncoding,omitempty"` // "base64" when the body is not valid UTF-8
}

func c2dEventOf(m *device.Message) c2dEvent {
	e := c2dEvent{
		Event: "c2d", MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, To: m.To,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Ack: m.Ack, Properties: m.Properties,
	}
	if !m.ExpiryTime.IsZero() {
		t := m.ExpiryTime.UTC()
		e.ExpiryTime = &t
	}
	if e.Properties == nil {
		e.Properties = map[string]string{}
	}
	if utf8.Valid(m.Body) {
		e.Body = string(m.Body)
	} else {
		e.Body, e.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return e
}
