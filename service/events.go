// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// Telemetry: the hub delivers device-to-cloud messages to its Event
// Hub-compatible endpoint, an event hub in a namespace of its own, which
// backends read over AMQP (amqp.md §2.7). EventHubEndpoint finds it the
// way the official samples do: a receiver attached to the hub's
// /messages/events/$management is detached with amqp:link:redirect, whose
// info names the namespace host and whose address names the event hub.
// An EventReceiver reads the event hub's partitions: it asks the event
// hub's $management node for the partition ids, then attaches one receiver
// per partition on {eventhub}/ConsumerGroups/{group}/Partitions/{id} with a
// selector filter for the starting position, authorizing each node with a
// put-token as the Go Event Hubs SDK does.

// DefaultConsumerGroup is the consumer group every event hub has.
const DefaultConsumerGroup = "$Default"

// defaultPrefetch is the credit each partition receiver grants, the Go
// Event Hubs SDK's default prefetch.
const defaultPrefetch = 300

// EventHubEndpoint is a hub's Event Hub-compatible endpoint.
type EventHubEndpoint struct {
	Host string // the namespace's host name, with ":port" when the port is not 5671
	Name string // the event hub's name
	// ConnectionString is the endpoint's connection string for the Event
	// Hubs SDKs (Endpoint=sb://{Host}/;SharedAccessKeyName=...;
	// SharedAccessKey=...;EntityPath={Name}), with the client's policy;
	// "" for a client built from a SAS token.
	ConnectionString string

	hostname string // Host without the port
	port     string
}

// EventHubEndpoint returns the hub's Event Hub-compatible endpoint,
// following the redirect of the hub's /messages/events (on the client's
// AMQP connection, see Close). The answer is kept for later calls.
func (c *Client) EventHubEndpoint(ctx context.Context) (*EventHubEndpoint, error) {
	const op = "EventHubEndpoint"
	c.amqpMu.Lock()
	known := c.ehEndpoint
	c.amqpMu.Unlock()
	if known != nil {
		ep := *known
		return &ep, nil
	}
	var ep *EventHubEndpoint
	err := c.withRetries(ctx, op, c.hubTarget().addr, func() error {
		a, err := c.hubConn(ctx, op)
		if err != nil {
			return err
		}
		ep, err = c.redirect(ctx, op, a)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pk, ok := c.cred.(*policyKey); ok {
		ep.ConnectionString = "Endpoint=sb://" + ep.Host + "/;SharedAccessKeyName=" + pk.keyName +
			";SharedAccessKey=" + pk.key + ";EntityPath=" + ep.Name
	}
	c.amqpMu.Lock()
	c.ehEndpoint = ep
	c.amqpMu.Unlock()
	out := *ep
	return &out, nil
}

// redirectWait bounds the wait for the hub's redirect after the attach.
const redirectWait = 30 * time.Second

// redirect attaches the receiver the hub redirects and reads its answer.
func (c *Client) redirect(ctx context.Context, op string, a *amqpConn) (*EventHubEndpoint, error) {
	source := "amqps://" + stripPort(c.host) + "/messages/events/$management"
	r, err := a.sess.NewReceiver(ctx, source, &amqp.ReceiverOptions{Credit: 1})
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, redirectWait)
		var m *amqp.Message
		m, err = r.Receive(rctx, nil)
		cancel()
		closeLink(r)
		if err == nil {
			_ = r.ReleaseMessage(ctx, m)
			return nil, errorf(op, "the hub sent a message on %s instead of redirecting to its Event Hub-compatible endpoint", source)
		}
		if ctx.Err() != nil {
			return nil, errorf(op, "%w", ctx.Err())
		}
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondLinkRedirect {
		return nil, c.amqpError(op, a.target.addr, err)
	}
	return parseRedirect(op, ae)
}

// parseRedirect reads the endpoint from amqp:link:redirect's info:
// hostname, and address amqps://{host}:{port}/{eventhub}/$management.
func parseRedirect(op string, ae *amqp.Error) (*EventHubEndpoint, error) {
	host, _ := ae.Info["hostname"].(string)
	addr, _ := ae.Info["address"].(string)
	u, err := url.Parse(addr)
	if host == "" || err != nil || u.Host == "" {
		return nil, errorf(op, "the hub's redirect names no endpoint (hostname %q, address %q)", host, addr)
	}
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(seg) == 0 || seg[0] == "" || strings.HasPrefix(seg[0], "$") {
		return nil, errorf(op, "the hub's redirect address %q names no event hub", addr)
	}
	port := u.Port()
	if port == "" {
		if p, ok := intValue(ae.Info["port"]); ok && p > 0 {
			port = strconv.Itoa(p)
		} else {
			port = defaultAMQPSPort
		}
	}
	ep := &EventHubEndpoint{Name: seg[0], hostname: host, port: port, Host: host}
	if port != defaultAMQPSPort {
		ep.Host = net.JoinHostPort(host, port)
	}
	return ep, nil
}

// eventHubTarget is how to reach ep from this client. An endpoint on the
// hub's own host (the emulator redirects to itself) is reached the way the
// hub is, since that is the address known to work; another host over TLS
// on the redirect's port, or over WebSockets on 443.
func (c *Client) eventHubTarget(ep *EventHubEndpoint) amqpTarget {
	if strings.EqualFold(ep.hostname, stripPort(c.host)) {
		t := c.hubTarget()
		if t.transport == transportWS {
			t.wsPath = wsPathEH
		}
		return t
	}
	if c.webSockets {
		return amqpTarget{transport: transportWS, addr: ep.hostname, host: ep.hostname, wsPath: wsPathEH}
	}
	return amqpTarget{transport: transportTLS, addr: net.JoinHostPort(ep.hostname, ep.port), host: ep.hostname}
}

// EventPosition is where an EventReceiver starts reading a partition. The
// zero value is the end of the partition: only events enqueued from now
// on. Set at most one of Earliest, SequenceNumber, Offset and
// EnqueuedTime.
type EventPosition struct {
	Earliest       bool      // from the oldest retained event
	SequenceNumber *int64    // after the event with this sequence number (partition-specific)
	Offset         string    // after the event at this offset (partition-specific)
	EnqueuedTime   time.Time // events enqueued after this time
	Inclusive      bool      // include the event at SequenceNumber, Offset or EnqueuedTime itself
}

// selector is the position as the selector filter the Event Hubs SDKs
// build (azeventhubs getOffsetExpression).
func (p EventPosition) selector() (string, error) {
	n := 0
	for _, set := range []bool{p.Earliest, p.SequenceNumber != nil, p.Offset != "", !p.EnqueuedTime.IsZero()} {
		if set {
			n++
		}
	}
	if n > 1 {
		return "", errors.New("an EventPosition sets more than one of Earliest, SequenceNumber, Offset and EnqueuedTime")
	}
	gt := ">"
	if p.Inclusive {
		gt = ">="
	}
	switch {
	case p.Earliest:
		return "amqp.annotation.x-opt-offset > '-1'", nil
	case p.SequenceNumber != nil:
		return fmt.Sprintf("amqp.annotation.x-opt-sequence-number %s '%d'", gt, *p.SequenceNumber), nil
	case p.Offset != "":
		if strings.ContainsRune(p.Offset, '\'') {
			return "", fmt.Errorf("offset %q contains a quote", p.Offset)
		}
		return fmt.Sprintf("amqp.annotation.x-opt-offset %s '%s'", gt, p.Offset), nil
	case !p.EnqueuedTime.IsZero():
		return fmt.Sprintf("amqp.annotation.x-opt-enqueued-time %s '%d'", gt, p.EnqueuedTime.UnixMilli()), nil
	}
	return "amqp.annotation.x-opt-offset > '@latest'", nil
}

// EventReceiverOptions configure an EventReceiver.
type EventReceiverOptions struct {
	ConsumerGroup  string                   // default DefaultConsumerGroup
	Partitions     []string                 // partitions to read; default all of them
	Start          EventPosition            // where every partition starts; the zero value is the end
	PartitionStart map[string]EventPosition // per-partition starts (checkpoints) that replace Start
	Prefetch       int                      // events each partition receiver may buffer; default 300
}

// Event is a device-to-cloud message as the Event Hub-compatible endpoint
// delivers it: the device's properties and body, and what the hub and the
// event hub add (the iothub-* and x-opt-* annotations).
type Event struct {
	Partition        string    // partition id
	SequenceNumber   int64     // x-opt-sequence-number: position in the partition
	Offset           string    // x-opt-offset
	EnqueuedTime     time.Time // x-opt-enqueued-time
	DeviceID         string    // iothub-connection-device-id: the sender
	ModuleID         string    // iothub-connection-module-id, when a module sent it
	AuthMethod       string    // iothub-connection-auth-method: the hub's JSON, e.g. {"scope":"device","type":"sas",...}
	AuthGenerationID string    // iothub-connection-auth-generation-id
	MessageSource    string    // iothub-message-source, e.g. "Telemetry"
	ComponentName    string    // dt-subject: the Plug and Play component
	MessageID        string
	CorrelationID    string
	UserID           string
	To               string
	ContentType      string
	ContentEncoding  string
	CreationTime     time.Time         // as the device set it
	ExpiryTime       time.Time         // as the device set it
	Properties       map[string]string // application properties; values that are not strings in their usual text form
	Annotations      map[string]any    // every message annotation, as sent
	Body             []byte
}

// EventReceiver reads telemetry from an Event Hub-compatible endpoint:
// the events of the partitions it was asked for, in order within each
// partition, interleaved across partitions as they arrive. A lost link or
// connection is reopened as the client's retry policy allows, from the
// event after the last one received. It is safe for concurrent use.
type EventReceiver struct {
	c      *Client // configuration: TLS, retry policy, logger, clock
	target amqpTarget
	host   string // for audiences
	name   string // the event hub
	group  string
	mint   minter
	parts  []string
	credit int32

	events chan *Event
	stop   chan struct{}
	failed chan struct{} // closed with err set
	err    error
	once   sync.Once
	wg     sync.WaitGroup

	mu   sync.Mutex
	conn *amqpConn
}

// NewEventReceiver reads the hub's telemetry from its Event
// Hub-compatible endpoint (found with EventHubEndpoint), with the client's
// policy and transport options. It returns once every partition's
// receiver has attached. Close it when done.
func (c *Client) NewEventReceiver(ctx context.Context, o EventReceiverOptions) (*EventReceiver, error) {
	ep, err := c.EventHubEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	mint := c.cred.sasToken
	return c.newEventReceiver(ctx, c.eventHubTarget(ep), ep.hostname, ep.Name, mint, o)
}

// NewEventReceiverFromConnectionString reads telemetry from the event hub
// that cs names, an Event Hub-compatible endpoint's connection string
// (Endpoint=sb://{host}[:port]/;SharedAccessKeyName=...;SharedAccessKey=...;
// EntityPath={name}, as the portal, EventHubEndpoint and the emulator
// print it): AMQP over TLS on the endpoint's port (default 5671), over
// WebSockets with WithWebSockets, or plain AMQP on port 5672 with
// UseDevelopmentEmulator=true. WithRootCAs, WithAMQPAddr, WithRetryPolicy,
// WithLogger and WithTokenLifetime apply as for a Client.
func NewEventReceiverFromConnectionString(ctx context.Context, cs string, o EventReceiverOptions, opts ...Option) (*EventReceiver, error) {
	ehcs, err := parseEventHubConnectionString(cs)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	pk := &policyKey{keyName: ehcs.keyName, key: ehcs.key, lifetime: cfg.tokenLifetime}
	if _, _, err := pk.sasToken("amqps://"+ehcs.hostname+"/"+ehcs.name, time.Now()); err != nil {
		return nil, err
	}
	c := newClient(ehcs.host, pk, cfg)
	var t amqpTarget
	switch {
	case cfg.amqpAddr != "":
		t = amqpTarget{transport: transportTLS, addr: cfg.amqpAddr, host: ehcs.hostname}
	case ehcs.devEmulator:
		port := ehcs.port
		if port == "" {
			port = "5672"
		}
		t = amqpTarget{transport: transportPlain, addr: net.JoinHostPort(ehcs.hostname, port), host: ehcs.hostname}
	case cfg.webSockets:
		t = amqpTarget{transport: transportWS, addr: ehcs.host, host: ehcs.hostname, wsPath: wsPathEH}
	default:
		port := ehcs.port
		if port == "" {
			port = defaultAMQPSPort
		}
		t = amqpTarget{transport: transportTLS, addr: net.JoinHostPort(ehcs.hostname, port), host: ehcs.hostname}
	}
	return c.newEventReceiver(ctx, t, ehcs.hostname, ehcs.name, pk.sasToken, o)
}

// eventHubConnectionString is a parsed Event Hubs connection string.
type eventHubConnectionString struct {
	host, hostname, port string
	keyName, key, name   string
	devEmulator          bool
}

func parseEventHubConnectionString(s string) (*eventHubConnectionString, error) {
	out := &eventHubConnectionString{}
	var endpoint string
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("event hub connection string: %q is not Name=value", part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = v
		case "sharedaccesskeyname":
			out.keyName = v
		case "sharedaccesskey":
			out.key = v
		case "entitypath":
			out.name = v
		case "usedevelopmentemulator":
			out.devEmulator = strings.EqualFold(v, "true")
		case "sharedaccesssignature":
			return nil, errors.New("event hub connection string: a SharedAccessSignature cannot be renewed or used for each partition; use SharedAccessKeyName and SharedAccessKey")
		}
	}
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || u.Host == "" {
		return nil, fmt.Errorf("event hub connection string: Endpoint %q is not sb://{host}/", endpoint)
	}
	if out.keyName == "" || out.key == "" || out.name == "" {
		return nil, errors.New("event hub connection string: want Endpoint, SharedAccessKeyName, SharedAccessKey and EntityPath")
	}
	out.host, out.hostname, out.port = u.Host, u.Hostname(), u.Port()
	return out, nil
}

func (c *Client) newEventReceiver(ctx context.Context, t amqpTarget, host, name string, mint minter, o EventReceiverOptions) (*EventReceiver, error) {
	const op = "NewEventReceiver"
	if o.ConsumerGroup == "" {
		o.ConsumerGroup = DefaultConsumerGroup
	}
	if o.Prefetch < 0 {
		return nil, errorf(op, "negative prefetch %d", o.Prefetch)
	}
	if o.Prefetch == 0 {
		o.Prefetch = defaultPrefetch
	}
	starts := map[string]string{}
	if _, err := o.Start.selector(); err != nil {
		return nil, errorf(op, "%w", err)
	}
	for p, pos := range o.PartitionStart {
		expr, err := pos.selector()
		if err != nil {
			return nil, errorf(op, "partition %s: %w", p, err)
		}
		starts[p] = expr
	}
	r := &EventReceiver{c: c, target: t, host: host, name: name, group: o.ConsumerGroup, mint: mint,
		credit: int32(min(o.Prefetch, 1<<20)), events: make(chan *Event), stop: make(chan struct{}), failed: make(chan struct{})}
	ids, err := r.partitionIDs(ctx, op)
	if err != nil {
		r.closeConn()
		return nil, err
	}
	if len(o.Partitions) == 0 {
		r.parts = ids
	} else {
		for _, p := range o.Partitions {
			if !slices.Contains(ids, p) {
				r.closeConn()
				return nil, errorf(op, "event hub %s has no partition %q; its partitions are %s", name, p, strings.Join(ids, ", "))
			}
		}
		r.parts = slices.Clone(o.Partitions)
	}
	for p := range o.PartitionStart {
		if !slices.Contains(r.parts, p) {
			r.closeConn()
			return nil, errorf(op, "PartitionStart names partition %q, which the receiver does not read", p)
		}
	}
	// Attach every partition before returning, so that a receiver that
	// starts at the end misses nothing sent after NewEventReceiver.
	attached := make(chan error, len(r.parts))
	for _, p := range r.parts {
		expr, ok := starts[p]
		if !ok {
			expr, _ = o.Start.selector()
		}
		r.wg.Add(1)
		go r.run(p, expr, attached)
	}
	for range r.parts {
		select {
		case err := <-attached:
			if err != nil {
				r.Close()
				return nil, err
			}
		case <-ctx.Done():
			r.Close()
			return nil, errorf(op, "%w", ctx.Err())
		}
	}
	return r, nil
}

// audience is the put-token audience of a node of the event hub, as the
// Event Hubs SDKs name it.
func (r *EventReceiver) audience(path string) string {
	return "amqps://" + r.host + "/" + path
}

// connection returns the receiver's AMQP connection, opening (or
// reopening) it when needed.
func (r *EventReceiver) connection(ctx context.Context, op string) (*amqpConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.stop:
		return nil, errorf(op, "%w", ErrClosed)
	default:
	}
	if r.conn != nil && r.conn.alive() {
		return r.conn, nil
	}
	if r.conn != nil {
		r.conn.close()
		r.conn = nil
	}
	a, err := r.c.openAMQP(ctx, op, r.target, r.mint)
	if err != nil {
		return nil, err
	}
	r.conn = a
	return a, nil
}

func (r *EventReceiver) closeConn() {
	r.mu.Lock()
	a := r.conn
	r.conn = nil
	r.mu.Unlock()
	if a != nil {
		a.close()
	}
}

// partitionIDs asks the event hub's $management node for its partitions.
func (r *EventReceiver) partitionIDs(ctx context.Context, op string) ([]string, error) {
	var ids []string
	err := r.c.withRetries(ctx, op, r.target.addr, func() error {
		a, err := r.connection(ctx, op)
		if err != nil {
			return err
		}
		if err := a.authorize(ctx, op, r.audience(r.name+"/$management")); err != nil {
			return err
		}
		tok, _, err := r.mint(r.audience(r.name), r.c.now())
		if err != nil {
			return errorf(op, "%w", err)
		}
		mgmt, err := newRPCLink(ctx, a.sess, "$management", "mgmt")
		if err != nil {
			return r.c.amqpError(op, a.target.addr, err)
		}
		defer func() { closeLink(mgmt.send); closeLink(mgmt.recv) }()
		status, desc, resp, err := mgmt.call(ctx, &amqp.Message{ApplicationProperties: map[string]any{
			"operation":      "READ",
			"name":           r.name,
			"type":           "com.microsoft:eventhub",
			"security_token": tok,
		}})
		if err != nil {
			return r.c.amqpError(op, a.target.addr, err)
		}
		if status < 200 || status > 299 {
			return statusError(op, status, desc)
		}
		props, ok := resp.Value.(map[string]any)
		if !ok {
			return errorf(op, "the event hub's properties are a %T, not a map", resp.Value)
		}
		switch v := props["partition_ids"].(type) {
		case []string:
			ids = v
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					ids = append(ids, s)
				}
			}
		}
		if len(ids) == 0 {
			return errorf(op, "the event hub %s reports no partitions", r.name)
		}
		return nil
	})
	return ids, err
}

// run reads partition p from expr on, reattaching after transient
// failures, until the receiver closes or fails. report is called once:
// with nil when the partition's receiver first attaches, or with the
// error that ends the partition before then.
func (r *EventReceiver) run(p, expr string, attached chan<- error) {
	defer r.wg.Done()
	const op = "ReceiveEvent"
	var once sync.Once
	report := func(err error) { once.Do(func() { attached <- err }) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for failures := 0; ; {
		delivered, err := r.read(ctx, op, p, &expr, report)
		if ctx.Err() != nil {
			report(errorf(op, "%w", ErrClosed))
			return
		}
		if delivered {
			failures = 0
		}
		failures++
		wait, ok := r.c.retry.Delay(failures, err)
		if !ok || !r.c.transient(err, r.target.addr) {
			report(err)
			r.fail(err)
			return
		}
		r.c.log.Info("iothub: event receiver reconnecting", "partition", p, "attempt", failures, "wait", wait, "error", err)
		if r.c.sleep(ctx, wait) != nil {
			report(errorf(op, "%w", ErrClosed))
			return
		}
	}
}

// read attaches a receiver to partition p from *expr and forwards its
// events, moving *expr past each one, until the link fails or ctx ends.
func (r *EventReceiver) read(ctx context.Context, op, p string, expr *string, report func(error)) (delivered bool, err error) {
	a, err := r.connection(ctx, op)
	if err != nil {
		return false, err
	}
	path := r.name + "/ConsumerGroups/" + r.group + "/Partitions/" + p
	if err := a.authorize(ctx, op, r.audience(path)); err != nil {
		return false, err
	}
	recv, err := a.sess.NewReceiver(ctx, path, &amqp.ReceiverOptions{
		Credit:         r.credit,
		SettlementMode: ptr(amqp.ReceiverSettleModeFirst),
		Filters:        []amqp.LinkFilter{amqp.NewSelectorFilter(*expr)},
	})
	if err != nil {
		return false, r.c.amqpError(op, a.target.addr, err)
	}
	defer closeLink(recv)
	report(nil)
	return r.forward(ctx, op, p, recv, expr, a.target.addr)
}

func (r *EventReceiver) forward(ctx context.Context, op, p string, recv *amqp.Receiver, expr *string, addr string) (bool, error) {
	delivered := false
	for {
		m, err := recv.Receive(ctx, nil)
		if err != nil {
			return delivered, r.c.amqpError(op, addr, err)
		}
		if err := recv.AcceptMessage(ctx, m); err != nil {
			return delivered, r.c.amqpError(op, addr, err)
		}
		ev := eventOf(p, m)
		select {
		case r.events <- ev:
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
		delivered = true
		*expr = fmt.Sprintf("amqp.annotation.x-opt-sequence-number > '%d'", ev.SequenceNumber)
	}
}

func (r *EventReceiver) fail(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// Receive returns the next event of any partition the receiver reads. It
// returns when one arrives, ctx ends, the receiver is closed (ErrClosed),
// or a partition cannot be read any more (the hub's refusal, or a lost
// connection the retry policy gave up on).
func (r *EventReceiver) Receive(ctx context.Context) (*Event, error) {
	const op = "ReceiveEvent"
	select {
	case <-r.failed:
		return nil, r.err
	default:
	}
	select {
	case ev := <-r.events:
		return ev, nil
	case <-r.stop:
		return nil, errorf(op, "%w", ErrClosed)
	case <-r.failed:
		return nil, r.err
	case <-ctx.Done():
		return nil, errorf(op, "%w", ctx.Err())
	}
}

// Partitions returns the ids of the partitions the receiver reads.
func (r *EventReceiver) Partitions() []string { return slices.Clone(r.parts) }

// EventHubName returns the name of the event hub the receiver reads.
func (r *EventReceiver) EventHubName() string { return r.name }

// Close detaches the receiver's links and closes its connection; a Receive
// in progress ends with ErrClosed.
func (r *EventReceiver) Close() error {
	r.mu.Lock()
	select {
	case <-r.stop:
		r.mu.Unlock()
		return nil
	default:
		close(r.stop)
	}
	r.mu.Unlock()
	r.closeConn()
	r.wg.Wait()
	return nil
}

// eventOf converts a delivered message.
func eventOf(partition string, m *amqp.Message) *Event {
	ev := &Event{Partition: partition, Body: body(m), Annotations: map[string]any{}, Properties: map[string]string{}}
	for k, v := range m.Annotations {
		ev.Annotations[fmt.Sprint(k)] = v
	}
	str := func(name string) string { s, _ := annotation(m, name).(string); return s }
	if n, ok := intValue(annotation(m, "x-opt-sequence-number")); ok {
		ev.SequenceNumber = int64(n)
	}
	switch v := annotation(m, "x-opt-offset").(type) {
	case string:
		ev.Offset = v
	case nil:
	default:
		ev.Offset = fmt.Sprint(v)
	}
	ev.EnqueuedTime = annotationTime(m, "x-opt-enqueued-time")
	ev.DeviceID = str("iothub-connection-device-id")
	ev.ModuleID = str("iothub-connection-module-id")
	ev.AuthMethod = str("iothub-connection-auth-method")
	ev.AuthGenerationID = str("iothub-connection-auth-generation-id")
	ev.MessageSource = str("iothub-message-source")
	ev.ComponentName = str("dt-subject")
	if p := m.Properties; p != nil {
		ev.MessageID = idString(p.MessageID)
		ev.CorrelationID = idString(p.CorrelationID)
		ev.UserID = string(p.UserID)
		ev.To = deref(p.To)
		ev.ContentType = deref(p.ContentType)
		ev.ContentEncoding = deref(p.ContentEncoding)
		if p.CreationTime != nil {
			ev.CreationTime = p.CreationTime.UTC()
		}
		if p.AbsoluteExpiryTime != nil {
			ev.ExpiryTime = p.AbsoluteExpiryTime.UTC()
		}
	}
	for k, v := range m.ApplicationProperties {
		ev.Properties[k] = propertyText(v)
	}
	return ev
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// propertyText is an application property's value as text.
func propertyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	case amqp.UUID:
		return x.String()
	}
	return fmt.Sprint(v)
}
