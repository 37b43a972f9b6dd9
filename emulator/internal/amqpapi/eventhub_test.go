// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs"
	goamqp "github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// record stores a device's message as the MQTT adapter would.
func (e *env) record(tb testing.TB, id hub.Identity, m *hub.Message) *hub.Message {
	tb.Helper()
	if err := e.hub.RecordTelemetry(context.Background(), id, "sas", "mqtt", m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// readerConn is a connection that has put a service token for everything
// under the event hub.
func (e *env) readerConn(tb testing.TB, via transport) *goamqp.Conn {
	tb.Helper()
	c := e.dial(tb, via, nil)
	aud := "amqps://" + hostName + "/" + hostName
	newCBS(tb, c).mustPut(tb, aud, e.policyToken(tb, "service", aud, e.clock.Now().Add(time.Hour)))
	return c
}

func partitionAddr(group string, p int) string {
	return fmt.Sprintf("%s/ConsumerGroups/%s/Partitions/%d", hostName, group, p)
}

// mgmtClient sends READ requests to the event hub's $management node.
type mgmtClient struct {
	snd *goamqp.Sender
	rcv *goamqp.Receiver
}

func newMgmt(tb testing.TB, c *goamqp.Conn, addr string) *mgmtClient {
	tb.Helper()
	s := newSession(tb, c)
	snd, err := s.NewSender(ctxT(tb), addr, nil)
	if err != nil {
		tb.Fatalf("attach %s: %v", addr, err)
	}
	rcv, err := s.NewReceiver(ctxT(tb), addr, &goamqp.ReceiverOptions{TargetAddress: "mgmt-reply"})
	if err != nil {
		tb.Fatalf("attach %s: %v", addr, err)
	}
	return &mgmtClient{snd: snd, rcv: rcv}
}

func (m *mgmtClient) read(tb testing.TB, props map[string]any) rpcReply {
	tb.Helper()
	return call(tb, m.snd, m.rcv, "mgmt-reply", &goamqp.Message{ApplicationProperties: props})
}

func TestManagementRead(t *testing.T) {
	e := newEnv(t, withPartitions(2))
	e.addDevice(t, "d1")
	p := e.hub.PartitionOf("d1")
	e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{Body: []byte("a")})
	last := e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{Body: []byte("b")})
	c := e.readerConn(t, viaTLS)
	for _, addr := range []string{hostName + "/$management", "$management", "amqps://" + hostName + "/" + hostName + "/$management"} {
		t.Run(addr, func(t *testing.T) {
			m := newMgmt(t, c, addr)
			r := m.read(t, map[string]any{"operation": "READ", "name": hostName, "type": "com.microsoft:eventhub"})
			if r.status != 200 {
				t.Fatalf("READ eventhub: %d %s", r.status, r.description)
			}
			body, ok := r.msg.Value.(map[string]any)
			if !ok {
				t.Fatalf("body %T, want a map with string keys", r.msg.Value)
			}
			if body["name"] != hostName || !cmp.Equal(body["partition_ids"], []string{"0", "1"}) || body["partition_count"] != int32(2) || body["georeplication_factor"] != int32(1) {
				t.Errorf("eventhub properties %v", body)
			}
			if _, ok := body["created_at"].(time.Time); !ok {
				t.Errorf("created_at %T, want a timestamp", body["created_at"])
			}
			for q := range 2 {
				r = m.read(t, map[string]any{"operation": "READ", "name": hostName, "type": "com.microsoft:partition", "partition": fmt.Sprint(q)})
				if r.status != 200 {
					t.Fatalf("READ partition %d: %d %s", q, r.status, r.description)
				}
				got := r.msg.Value.(map[string]any)
				want := map[string]any{"name": hostName, "type": "com.microsoft:partition", "partition": fmt.Sprint(q),
					"begin_sequence_number": int64(0), "last_enqueued_sequence_number": int64(-1), "last_enqueued_offset": "-1",
					"last_enqueued_time_utc": time.Time{}, "is_partition_empty": true}
				if q == p {
					want["last_enqueued_sequence_number"] = int64(1)
					want["last_enqueued_offset"] = fmt.Sprint(last.SequenceNumber)
					want["last_enqueued_time_utc"] = last.EnqueuedTime.Truncate(time.Millisecond)
					want["is_partition_empty"] = false
				}
				if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
					t.Errorf("partition %d (-want +got):\n%s", q, diff)
				}
			}
		})
	}
	m := newMgmt(t, c, hostName+"/$management")
	for _, tc := range []struct {
		name   string
		props  map[string]any
		status int32
	}{
		{"another event hub", map[string]any{"operation": "READ", "name": "other", "type": "com.microsoft:eventhub"}, 404},
		{"no such partition", map[string]any{"operation": "READ", "name": hostName, "type": "com.microsoft:partition", "partition": "2"}, 404},
		{"partition not a number", map[string]any{"operation": "READ", "name": hostName, "type": "com.microsoft:partition", "partition": "01"}, 404},
		{"another type", map[string]any{"operation": "READ", "name": hostName, "type": "com.microsoft:queue"}, 400},
		{"lock renewal", map[string]any{"operation": "com.microsoft:renew-lock", "name": hostName}, 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := m.read(t, tc.props); r.status != tc.status {
				t.Errorf("got %d %s, want %d", r.status, r.description, tc.status)
			}
		})
	}
}

// receiveAll reads n messages from a receiver.
func receiveAll(tb testing.TB, r *goamqp.Receiver, n int) []*goamqp.Message {
	tb.Helper()
	var out []*goamqp.Message
	for len(out) < n {
		m, err := r.Receive(ctxT(tb), nil)
		if err != nil {
			tb.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func selector(expr string) *goamqp.ReceiverOptions {
	return &goamqp.ReceiverOptions{Filters: []goamqp.LinkFilter{goamqp.NewSelectorFilter(expr)}}
}

// TestPartitionReadersExactlyOnceInOrder: every recorded message, on its
// partition, once, in order, with small credit windows and while messages
// keep arriving.
func TestPartitionReadersExactlyOnceInOrder(t *testing.T) {
	e := newEnv(t, withPartitions(3))
	devices := []string{"a", "b", "c", "d", "e"}
	for _, d := range devices {
		e.addDevice(t, d)
	}
	const n = 60
	send := func(from, to int) {
		for i := from; i < to; i++ {
			d := devices[i%len(devices)]
			e.record(t, hub.Identity{DeviceID: d}, &hub.Message{Body: []byte(fmt.Sprintf("%s-%03d", d, i))})
		}
	}
	send(0, n/2)
	c := e.readerConn(t, viaPlain)
	s := newSession(t, c)
	want := map[int]int{}
	for _, d := range devices {
		want[e.hub.PartitionOf(d)] += n / len(devices)
	}
	rcvs := map[int]*goamqp.Receiver{}
	for p := range 3 {
		o := selector("amqp.annotation.x-opt-offset > '-1'")
		o.Credit = 7
		r, err := s.NewReceiver(ctxT(t), partitionAddr("$Default", p), o)
		if err != nil {
			t.Fatal(err)
		}
		rcvs[p] = r
	}
	go send(n/2, n)
	for p, r := range rcvs {
		ms := receiveAll(t, r, want[p])
		lastSeq := map[string]string{}
		for i, m := range ms {
			if seq := m.Annotations["x-opt-sequence-number"]; seq != int64(i) {
				t.Errorf("partition %d message %d: x-opt-sequence-number %v", p, i, seq)
			}
			body := string(m.Data[0])
			d := body[:1]
			if e.hub.PartitionOf(d) != p {
				t.Errorf("partition %d delivered %s's message", p, d)
			}
			if body <= lastSeq[d] {
				t.Errorf("partition %d: %s after %s", p, body, lastSeq[d])
			}
			lastSeq[d] = body
			_ = r.AcceptMessage(ctxT(t), m)
		}
		// Nothing more: the partition was read exactly once.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if m, err := r.Receive(ctx, nil); err == nil {
			t.Errorf("partition %d: an extra message %q", p, m.Data[0])
		}
		cancel()
	}
}

func TestSelectorPositions(t *testing.T) {
	e := newEnv(t, withPartitions(1))
	e.addDevice(t, "d1")
	id := hub.Identity{DeviceID: "d1"}
	var recs []*hub.Message
	for i := range 5 {
		recs = append(recs, e.record(t, id, &hub.Message{Body: []byte(fmt.Sprint(i))}))
	}
	c := e.readerConn(t, viaPlain)
	s := newSession(t, c)
	off := func(i int) string { return fmt.Sprint(recs[i].SequenceNumber) }
	tests := []struct {
		expr  string
		first string
	}{
		{"amqp.annotation.x-opt-offset > '-1'", "0"},
		{"amqp.annotation.x-opt-offset > '" + off(1) + "'", "2"},
		{"amqp.annotation.x-opt-offset >= '" + off(1) + "'", "1"},
		{"amqp.annotation.x-opt-sequence-number > '2'", "3"},
		{"amqp.annotation.x-opt-sequence-number >= '2'", "2"},
		{fmt.Sprintf("amqp.annotation.x-opt-enqueued-time > '%d'", recs[0].EnqueuedTime.Add(-time.Hour).UnixMilli()), "0"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			r, err := s.NewReceiver(ctxT(t), partitionAddr("any-group", 0), selector(tc.expr))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close(ctxT(t))
			if m := receiveAll(t, r, 1)[0]; string(m.Data[0]) != tc.first {
				t.Errorf("first message %q, want %q", m.Data[0], tc.first)
			}
		})
	}
	t.Run("@latest", func(t *testing.T) {
		r, err := s.NewReceiver(ctxT(t), partitionAddr("latest", 0), selector("amqp.annotation.x-opt-offset > '@latest'"))
		if err != nil {
			t.Fatal(err)
		}
		e.record(t, id, &hub.Message{Body: []byte("new")})
		if m := receiveAll(t, r, 1)[0]; string(m.Data[0]) != "new" {
			t.Errorf("first message %q, want only what came after the attach", m.Data[0])
		}
	})
	for _, tc := range []struct {
		name, addr, expr string
		cond             goamqp.ErrCond
	}{
		{"bad selector", partitionAddr("$Default", 0), "amqp.annotation.x-opt-offset < '5'", "com.microsoft:argument-error"},
		{"no such partition", partitionAddr("$Default", 1), "amqp.annotation.x-opt-offset > '-1'", "com.microsoft:argument-out-of-range"},
		{"another event hub", "otherhub/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-offset > '-1'", goamqp.ErrCondNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCondition(t, tc.name, attachErr(t, s, tc.addr, selector(tc.expr)), tc.cond, "")
		})
	}
	t.Run("producer", func(t *testing.T) {
		wantCondition(t, "send to the event hub", senderAttachErr(t, s, hostName), goamqp.ErrCondNotImplemented, "read-only")
		wantCondition(t, "send to a partition", senderAttachErr(t, s, hostName+"/Partitions/0"), goamqp.ErrCondNotImplemented, "read-only")
	})
}

// TestPartitionAuthorization: reading events needs ServiceConnect.
func TestPartitionAuthorization(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		policy, audience string
		ok               bool
	}{
		{"service", "sb://" + hostName + "/" + hostName + "/ConsumerGroups/$Default/Partitions/0", true},
		{"iothubowner", hostName, true},
		{"registryRead", hostName, false},
		{"device", hostName, false},
		{"service", "sb://" + hostName + "/" + hostName + "/ConsumerGroups/$Default/Partitions/1", false},
	} {
		t.Run(tc.policy+" "+tc.audience, func(t *testing.T) {
			c := e.dial(t, viaPlain, nil)
			newCBS(t, c).mustPut(t, tc.audience, e.policyToken(t, tc.policy, tc.audience, later()))
			s := newSession(t, c)
			if tc.ok {
				attachOK(t, s, partitionAddr("$Default", 0))
			} else {
				wantCondition(t, "attach", attachErr(t, s, partitionAddr("$Default", 0), nil), goamqp.ErrCondUnauthorizedAccess, "")
			}
		})
	}
}

// TestEventMessage: what a consumer sees of a device's message.
func TestEventMessage(t *testing.T) {
	e := newEnv(t, withPartitions(1))
	e.addDevice(t, "d1")
	if _, err := e.hub.PutModule(context.Background(), &hub.Module{DeviceID: "d1", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	d, _ := e.hub.GetDevice(context.Background(), "d1")
	rec := e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{MessageID: "mid-1", CorrelationID: "cid-1", UserID: "u",
		ContentType: "application/json", ContentEncoding: "utf-8", CreationTime: "2024-05-02T09:00:00.123Z", ComponentName: "thermostat1",
		Properties: map[string]string{"alert": "high"}, Body: []byte(`{"t":21}`)})
	e.record(t, hub.Identity{DeviceID: "d1", ModuleID: "m1"}, &hub.Message{Body: []byte("from the module")})
	r, err := newSession(t, e.readerConn(t, viaTLS)).NewReceiver(ctxT(t), partitionAddr("$Default", 0),
		&goamqp.ReceiverOptions{DesiredCapabilities: []string{"com.microsoft:enable-receiver-runtime-metric"}})
	if err != nil {
		t.Fatal(err)
	}
	ms := receiveAll(t, r, 2)
	m := ms[0]
	wantAnn := goamqp.Annotations{
		"x-opt-sequence-number":                int64(0),
		"x-opt-offset":                         fmt.Sprint(rec.SequenceNumber),
		"x-opt-enqueued-time":                  rec.EnqueuedTime.Truncate(time.Millisecond),
		"iothub-connection-device-id":          "d1",
		"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
		"iothub-connection-auth-generation-id": d.GenerationID,
		"iothub-enqueuedtime":                  rec.EnqueuedTime.Truncate(time.Millisecond),
		"iothub-message-source":                "Telemetry",
		"dt-subject":                           "thermostat1",
	}
	if diff := cmp.Diff(wantAnn, m.Annotations, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	p := m.Properties
	if p.MessageID != "mid-1" || p.CorrelationID != "cid-1" || string(p.UserID) != "u" || *p.ContentType != "application/json" ||
		*p.ContentEncoding != "utf-8" || !p.CreationTime.Equal(time.Date(2024, 5, 2, 9, 0, 0, 123e6, time.UTC)) {
		t.Errorf("properties %+v", p)
	}
	if !cmp.Equal(m.ApplicationProperties, map[string]any{"alert": "high"}) || string(m.Data[0]) != `{"t":21}` {
		t.Errorf("application properties %v, body %q", m.ApplicationProperties, m.Data)
	}
	if _, ok := m.DeliveryAnnotations["last_enqueued_sequence_number"].(int64); !ok {
		t.Errorf("delivery annotations %v: want the runtime metric the client asked for", m.DeliveryAnnotations)
	}
	if mod := ms[1].Annotations; mod["iothub-connection-module-id"] != "m1" || !strings.Contains(mod["iothub-connection-auth-method"].(string), `"scope":"module"`) {
		t.Errorf("module message annotations %v", mod)
	}
}

// TestCreditAndDrain: a consumer that grants no credit gets nothing (and
// stalls nobody else); credit brings exactly that many; a drain takes back
// the credit left, and what it held back comes, in order, with new credit.
func TestCreditAndDrain(t *testing.T) {
	e := newEnv(t, withPartitions(1))
	e.addDevice(t, "d1")
	for i := range 5 {
		e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{Body: []byte(fmt.Sprint(i))})
	}
	s := newSession(t, e.readerConn(t, viaPlain))
	o := selector("amqp.annotation.x-opt-offset > '-1'")
	o.Credit = -1 // manual credit
	r, err := s.NewReceiver(ctxT(t), partitionAddr("$Default", 0), o)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile another consumer reads everything.
	other, err := newSession(t, e.readerConn(t, viaTLS)).NewReceiver(ctxT(t), partitionAddr("$Default", 0), selector("amqp.annotation.x-opt-offset > '-1'"))
	if err != nil {
		t.Fatal(err)
	}
	receiveAll(t, other, 5)
	if m := r.Prefetched(); m != nil {
		t.Fatalf("got %q without credit", m.Data[0])
	}
	if err := r.IssueCredit(2); err != nil {
		t.Fatal(err)
	}
	if ms := receiveAll(t, r, 2); string(ms[0].Data[0]) != "0" || string(ms[1].Data[0]) != "1" {
		t.Fatalf("with credit 2: %q %q", ms[0].Data[0], ms[1].Data[0])
	}
	// Drain while 10 credits are out. go-amqp's drain flow carries
	// link-credit 0, which takes back the credit left (part 2, 2.6.7), so
	// the answer follows whatever was already on its way, and the rest
	// waits, in order, for the next credit.
	if err := r.IssueCredit(10); err != nil {
		t.Fatal(err)
	}
	got := []string{string(receiveAll(t, r, 1)[0].Data[0])}
	if err := r.DrainCredit(ctxT(t), nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
	for m := r.Prefetched(); m != nil; m = r.Prefetched() {
		got = append(got, string(m.Data[0]))
	}
	want := []string{"2", "3", "4"}
	if len(got) > len(want) || !cmp.Equal(got, want[:len(got)]) {
		t.Fatalf("drain delivered %v, want a prefix of %v", got, want)
	}
	rest := want[len(got):]
	// A drain with nothing to send completes at once, credit unused.
	if err := r.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{Body: []byte("5")})
	var after []string
	for _, m := range receiveAll(t, r, len(rest)+1) {
		after = append(after, string(m.Data[0]))
	}
	if want := append(rest, "5"); !cmp.Equal(after, want) {
		t.Fatalf("after the drain got %v, want %v", after, want)
	}
	if err := r.DrainCredit(ctxT(t), nil); err != nil {
		t.Fatalf("drain of an empty partition: %v", err)
	}
	if m := r.Prefetched(); m != nil {
		t.Errorf("an empty drain delivered %q", m.Data[0])
	}
	// After the drain no credit is left: a new message waits for credit.
	e.record(t, hub.Identity{DeviceID: "d1"}, &hub.Message{Body: []byte("6")})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := r.Receive(ctx, nil); err == nil {
		t.Errorf("got %q after the drain, without credit", m.Data[0])
	}
}

func epochOpts(epoch int64) *goamqp.ReceiverOptions {
	o := selector("amqp.annotation.x-opt-offset > '@latest'")
	o.Properties = map[string]any{"com.microsoft:epoch": epoch, "com.microsoft:receiver-name": fmt.Sprint("epoch-", epoch)}
	return o
}

func TestEpochReceivers(t *testing.T) {
	e := newEnv(t, withPartitions(2))
	s := newSession(t, e.readerConn(t, viaPlain))
	addr := partitionAddr("$Default", 0)
	plainReader := attachOK(t, s, addr)
	r1, err := s.NewReceiver(ctxT(t), addr, epochOpts(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	_, err = plainReader.Receive(ctx, nil)
	wantCondition(t, "a reader without epoch when an epoch reader comes", linkError(t, err), goamqp.ErrCondStolen, "epoch-1")
	wantCondition(t, "a lower epoch", attachErr(t, s, addr, epochOpts(0)), goamqp.ErrCondStolen, "epoch '1'")
	wantCondition(t, "no epoch", attachErr(t, s, addr, nil), goamqp.ErrCondStolen, "non-epoch")
	r2, err := s.NewReceiver(ctxT(t), addr, epochOpts(2))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r1.Receive(ctx, nil)
	wantCondition(t, "epoch 1 when epoch 2 comes", linkError(t, err), goamqp.ErrCondStolen, "higher epoch of '2'")
	stillAttached(t, r2)
	// Another consumer group, another partition: not affected.
	attachOK(t, s, partitionAddr("other", 0))
	// Five readers without epochs may share a partition; not six.
	addr1 := partitionAddr("$Default", 1)
	for range maxNonEpochReaders {
		attachOK(t, s, addr1)
	}
	wantCondition(t, "a sixth reader", attachErr(t, s, addr1, nil), goamqp.ErrCondResourceLimitExceeded, "5")
}

func TestRedirect(t *testing.T) {
	e := newEnv(t)
	tok := e.policyToken(t, "service", hostName+"/messages/events", later())
	plain := &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("service@sas.root."+hostName, tok)}
	for _, tc := range []struct {
		via     transport
		source  string
		address string
		port    string
	}{
		{viaTLS, "amqps://" + hostName + "/messages/events/$management", "amqps://%s:%s/localhost/$management", tlsPort(e)},
		{viaTLS, "/messages/events/ConsumerGroups/$Default/Partitions/1", "amqps://%s:%s/localhost/ConsumerGroups/$Default/Partitions/1", tlsPort(e)},
		{viaWebSocket, "messages/events/", "amqps://%s:%s/localhost/", tlsPort(e)},
		{viaPlain, "/messages/events/$management", "amqp://%s:%s/localhost/$management", plainPort(e)},
	} {
		t.Run(tc.source, func(t *testing.T) {
			s := newSession(t, e.dial(t, tc.via, plain))
			le := attachErr(t, s, tc.source, nil)
			want := fmt.Sprintf(tc.address, hostName, tc.port)
			if le == nil || le.Condition != goamqp.ErrCondLinkRedirect {
				t.Fatalf("got %v, want amqp:link:redirect", le)
			}
			wantInfo := map[string]any{"hostname": hostName, "network-host": hostName, "port": int32(atoi(t, tc.port)), "address": want}
			if !cmp.Equal(le.Info, wantInfo) {
				t.Errorf("redirect info %v, want %v", le.Info, wantInfo)
			}
		})
	}
	t.Run("without a claim", func(t *testing.T) {
		s := newSession(t, e.dial(t, viaPlain, nil))
		wantCondition(t, "redirect", attachErr(t, s, "/messages/events/$management", nil), goamqp.ErrCondUnauthorizedAccess, "")
	})
}

func tlsPort(e *env) string   { _, p, _ := net.SplitHostPort(e.srv.Addr().String()); return p }
func plainPort(e *env) string { _, p, _ := net.SplitHostPort(e.srv.PlainAddr().String()); return p }

func atoi(tb testing.TB, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestAzEventHubs reads with the official Go Event Hubs SDK, over TLS with
// the endpoint's connection string, and over plain AMQP with
// UseDevelopmentEmulator=true.
func TestAzEventHubs(t *testing.T) {
	e := newEnv(t, withPartitions(2))
	e.addDevice(t, "d1")
	id := hub.Identity{DeviceID: "d1"}
	for i := range 3 {
		e.record(t, id, &hub.Message{MessageID: fmt.Sprint("m", i), Properties: map[string]string{"n": fmt.Sprint(i)}, Body: []byte(fmt.Sprint("body", i))})
	}
	p := fmt.Sprint(e.hub.PartitionOf("d1"))
	key := e.policyKey("service")
	for _, tc := range []struct {
		name, cs string
		opts     *azeventhubs.ConsumerClientOptions
	}{
		{"tls", fmt.Sprintf("Endpoint=sb://%s:%s/;SharedAccessKeyName=service;SharedAccessKey=%s;EntityPath=%s", hostName, tlsPort(e), key, hostName),
			&azeventhubs.ConsumerClientOptions{TLSConfig: &tls.Config{RootCAs: e.roots, ServerName: hostName}}},
		{"UseDevelopmentEmulator", fmt.Sprintf("Endpoint=sb://%s:%s/;SharedAccessKeyName=service;SharedAccessKey=%s;EntityPath=%s;UseDevelopmentEmulator=true", hostName, plainPort(e), key, hostName), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := azeventhubs.NewConsumerClientFromConnectionString(tc.cs, "", azeventhubs.DefaultConsumerGroup, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close(context.Background())
			ctx := ctxT(t)
			props, err := client.GetEventHubProperties(ctx, nil)
			if err != nil {
				t.Fatalf("GetEventHubProperties: %v", err)
			}
			if props.Name != hostName || !cmp.Equal(props.PartitionIDs, []string{"0", "1"}) {
				t.Errorf("event hub properties %+v", props)
			}
			pp, err := client.GetPartitionProperties(ctx, p, nil)
			if err != nil {
				t.Fatalf("GetPartitionProperties: %v", err)
			}
			if pp.LastEnqueuedSequenceNumber != 2 || pp.IsEmpty || pp.PartitionID != p {
				t.Errorf("partition properties %+v", pp)
			}
			pc, err := client.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close(context.Background())
			evs, err := pc.ReceiveEvents(ctx, 3, nil)
			if err != nil {
				t.Fatalf("ReceiveEvents: %v", err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, fmt.Sprintf("%d %s %v %s %s", ev.SequenceNumber, ev.Body, ev.Properties["n"], *ev.MessageID, ev.SystemProperties["iothub-connection-device-id"]))
			}
			want := []string{"0 body0 0 m0 d1", "1 body1 1 m1 d1", "2 body2 2 m2 d1"}
			if !cmp.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			// From a sequence number, and receiving only what is new.
			pc2, err := client.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{SequenceNumber: to.Ptr[int64](1)}})
			if err != nil {
				t.Fatal(err)
			}
			defer pc2.Close(context.Background())
			evs, err = pc2.ReceiveEvents(ctx, 1, nil)
			if err != nil || len(evs) != 1 || evs[0].SequenceNumber != 2 {
				t.Fatalf("after sequence number 1: %v, %v", evs, err)
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			evs, err = pc2.ReceiveEvents(short, 1, nil)
			cancel()
			if len(evs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("at the end of the partition: %d events, %v; want none by the deadline", len(evs), err)
			}
		})
	}
}
