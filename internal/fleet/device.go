// SPDX-License-Identifier: MIT

package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
)

// apiVersion is what the simulated devices announce in their MQTT username.
const apiVersion = "2021-04-12"

// Topics of the device API (IoT Hub MQTT support).
const (
	topicMethodRequest = "$iothub/methods/POST/"
	topicTwinResponse  = "$iothub/twin/res/"
	topicDesiredPatch  = "$iothub/twin/PATCH/properties/desired/"
	filterMethods      = "$iothub/methods/POST/#"
	filterTwinRes      = "$iothub/twin/res/#"
	filterDesired      = "$iothub/twin/PATCH/properties/desired/#"
)

// Credential is how one simulated device authenticates: a symmetric key
// (SAS) or a client certificate (X.509).
type Credential struct {
	DeviceID string
	Key      string           // base64 symmetric key; empty with Cert
	Cert     *tls.Certificate // client certificate; nil with Key
}

// ErrClosed is returned by a device's operations once its connection is gone.
var ErrClosed = errors.New("fleet: connection closed")

// Device is one simulated device: one MQTT connection, one goroutine that
// reads it, and writes made by whoever calls (under a mutex). An idle
// device costs its connection and that goroutine, nothing else.
type Device struct {
	cred  Credential
	fleet *Fleet

	conn net.Conn
	wmu  sync.Mutex
	wbuf []byte

	mu      sync.Mutex
	nextPID uint16
	nextRID uint64
	acks    map[uint16]*pending // QoS 1 publishes awaiting PUBACK
	twin    map[string]*pending // twin requests awaiting their response, by rid
	closed  bool
	done    chan struct{} // closed when the read loop ends

	lastWrite atomic.Int64 // unix nanoseconds, for keep-alive pings
}

// pending is one request awaiting its answer.
type pending struct {
	start  time.Time
	fleet  *Fleet         // counts it in flight
	hist   *Histogram     // where its latency goes; nil: not recorded
	done   chan struct{}  // closed with the answer; nil when nobody waits
	status int            // twin responses: the status
	err    error          // set before done is closed
	onDone func(*pending) // called from the read loop; nil when none
}

// ID is the device id.
func (d *Device) ID() string { return d.cred.DeviceID }

// connect dials, authenticates and subscribes. The read loop runs once it
// returns nil.
func (d *Device) connect(ctx context.Context, local net.Addr) error {
	f := d.fleet
	dialer := &net.Dialer{Timeout: f.opts.ConnectTimeout, LocalAddr: local}
	tcfg := f.tlsConfig.Clone()
	if d.cred.Cert != nil {
		tcfg.Certificates = []tls.Certificate{*d.cred.Cert}
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.ConnectTimeout)
	defer cancel()
	raw, err := dialer.DialContext(ctx, "tcp", f.opts.Addr)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, tcfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return fmt.Errorf("tls: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	password := ""
	if d.cred.Cert == nil {
		expiry := time.Now().Add(f.opts.TokenLifetime)
		password, err = sas.NewToken(sas.ResourceURI(f.opts.HostName, d.cred.DeviceID, ""), "", d.cred.Key, expiry)
		if err != nil {
			raw.Close()
			return err
		}
	}
	username := f.opts.HostName + "/" + d.cred.DeviceID + "/?api-version=" + apiVersion
	keepAlive := uint16(f.opts.KeepAlive / time.Second)
	r := bufio.NewReaderSize(conn, 512)
	if _, err := conn.Write(connectPacket(d.cred.DeviceID, username, password, keepAlive, !f.opts.PersistentSession)); err != nil {
		raw.Close()
		return err
	}
	p, _, err := readPacket(r, nil)
	if err != nil {
		raw.Close()
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	if p.typ != pktConnack || len(p.body) < 2 {
		raw.Close()
		return fmt.Errorf("got packet type %#x, want CONNACK", p.typ)
	}
	if rc := p.body[1]; rc != 0 {
		raw.Close()
		return &ConnackError{Code: rc}
	}
	filters := []string{filterMethods, filterTwinRes, filterDesired}
	if f.opts.C2D {
		filters = append(filters, "devices/"+d.cred.DeviceID+"/messages/devicebound/#")
	}
	if _, err := conn.Write(subscribePacket(1, filters...)); err != nil {
		raw.Close()
		return err
	}
	if p, _, err = readPacket(r, nil); err != nil || p.typ != pktSuback {
		raw.Close()
		return fmt.Errorf("reading SUBACK: got %#x, %v", p.typ, err)
	}
	for _, rc := range p.body[2:] {
		if rc > 1 {
			raw.Close()
			return fmt.Errorf("subscription refused (SUBACK %#x)", rc)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	d.mu.Lock()
	d.conn, d.closed, d.done = conn, false, make(chan struct{})
	d.acks, d.twin = map[uint16]*pending{}, map[string]*pending{}
	d.mu.Unlock()
	d.lastWrite.Store(time.Now().UnixNano())
	go d.readLoop(r, d.done)
	return nil
}

// ConnackError is a refused CONNECT.
type ConnackError struct{ Code byte }

func (e *ConnackError) Error() string {
	return "connection refused: CONNACK return code " + strconv.Itoa(int(e.Code))
}

// write sends one encoded packet built by fill.
func (d *Device) write(fill func([]byte) []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	conn, closed := d.conn, d.closed
	d.mu.Unlock()
	if closed || conn == nil {
		return ErrClosed
	}
	d.wbuf = fill(d.wbuf[:0])
	_ = conn.SetWriteDeadline(time.Now().Add(d.fleet.opts.WriteTimeout))
	_, err := conn.Write(d.wbuf)
	if cap(d.wbuf) > 4096 {
		d.wbuf = nil // an idle device keeps no large buffer
	}
	if err != nil {
		d.close(err)
		return err
	}
	d.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// close ends the connection and fails what waits on it.
func (d *Device) close(cause error) {
	d.mu.Lock()
	if d.closed || d.conn == nil {
		d.mu.Unlock()
		return
	}
	d.closed = true
	conn := d.conn
	acks, twin := d.acks, d.twin
	d.acks, d.twin = nil, nil
	d.mu.Unlock()
	conn.Close()
	for _, p := range acks {
		p.finish(ErrClosed)
	}
	for _, p := range twin {
		p.finish(ErrClosed)
	}
	_ = cause
}

func (p *pending) finish(err error) {
	if p.fleet != nil {
		p.fleet.stats.inflight.Add(-1)
	}
	p.err = err
	if err == nil && p.hist != nil {
		p.hist.Record(time.Since(p.start))
	}
	if p.onDone != nil {
		p.onDone(p)
	}
	if p.done != nil {
		close(p.done)
	}
}

// Connected reports whether the device's connection is up.
func (d *Device) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn != nil && !d.closed
}

// readLoop serves the connection until it ends.
func (d *Device) readLoop(r *bufio.Reader, done chan struct{}) {
	defer close(done)
	f := d.fleet
	var buf []byte
	for {
		p, nb, err := readPacket(r, buf)
		if err != nil {
			d.close(err)
			f.lost(d, err)
			return
		}
		buf = nb
		if cap(buf) > 4096 {
			buf = nil
		}
		switch p.typ {
		case pktPuback:
			d.mu.Lock()
			pe := d.acks[p.pid]
			delete(d.acks, p.pid)
			d.mu.Unlock()
			if pe != nil {
				pe.finish(nil)
			}
		case pktPublish:
			d.onPublish(p)
		}
	}
}

// onPublish handles what the hub sends: method requests are answered,
// twin responses complete their requests, desired patches are counted (and
// reported back when the fleet says so), C2D messages acknowledged.
func (d *Device) onPublish(p packet) {
	f := d.fleet
	qos := (p.flags >> 1) & 3
	switch {
	case strings.HasPrefix(p.topic, topicMethodRequest):
		rid := ridOf(p.topic)
		f.stats.methods.Add(1)
		payload := f.opts.MethodResponse
		if payload == nil {
			payload = []byte(`{}`)
		}
		topic := "$iothub/methods/res/200/?$rid=" + rid
		if err := d.write(func(b []byte) []byte { return appendPublish(b, topic, payload, 0, 0) }); err != nil {
			f.stats.errors.Add(1)
		}
	case strings.HasPrefix(p.topic, topicTwinResponse):
		rest := p.topic[len(topicTwinResponse):]
		status, _ := strconv.Atoi(rest[:max(strings.IndexByte(rest, '/'), 0)])
		rid := ridOf(p.topic)
		d.mu.Lock()
		pe := d.twin[rid]
		delete(d.twin, rid)
		d.mu.Unlock()
		if pe != nil {
			pe.status = status
			var err error
			if status >= 300 {
				err = fmt.Errorf("fleet: twin request answered %d: %s", status, p.payload)
				if pe.done == nil {
					f.stats.errors.Add(1) // nobody waits to count it
				}
			}
			pe.finish(err)
		}
	case strings.HasPrefix(p.topic, topicDesiredPatch):
		f.stats.desired.Add(1)
		if f.opts.AckDesired {
			body := append([]byte(nil), p.payload...)
			go func() {
				if err := d.report(context.Background(), desiredAck(body), nil); err != nil {
					f.stats.errors.Add(1)
				}
			}()
		}
	default:
		f.stats.c2d.Add(1)
		if f.opts.Echo {
			// Request and reply through a plain broker (Requester).
			_, bag, _ := strings.Cut(p.topic, "/messages/devicebound/")
			topic := d.telemetryTopic(bag)
			body := p.payload
			if err := d.write(func(b []byte) []byte { return appendPublish(b, topic, body, 0, 0) }); err != nil {
				f.stats.errors.Add(1)
			}
		}
	}
	if qos > 0 {
		if err := d.write(func(b []byte) []byte { return append(b, pubackPacket(p.pid)...) }); err != nil {
			f.stats.errors.Add(1)
		}
	}
}

// desiredAck turns a desired patch into the reported patch that
// acknowledges it: {"desiredAck":{"version":V}} (a reported name may not
// start with '$').
func desiredAck(patch []byte) []byte {
	v := "0"
	if i := strings.Index(string(patch), `"$version":`); i >= 0 {
		s := string(patch[i+len(`"$version":`):])
		end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(s)
		}
		if end > 0 {
			v = s[:end]
		}
	}
	return []byte(`{"desiredAck":{"version":` + v + `}}`)
}

// ridOf returns the $rid query value of a topic.
func ridOf(topic string) string {
	_, q, _ := strings.Cut(topic, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		return ""
	}
	return vals.Get("$rid")
}

// Send publishes one telemetry message at QoS 1 and waits for its PUBACK.
// Its latency goes to the fleet's telemetry histogram.
func (d *Device) Send(ctx context.Context, bag string, payload []byte) error {
	pe := &pending{start: time.Now(), hist: &d.fleet.stats.telemetry, done: make(chan struct{})}
	if err := d.publishQoS1(d.telemetryTopic(bag), payload, pe); err != nil {
		return err
	}
	return d.wait(ctx, pe)
}

// sendAsync publishes at QoS 1 without waiting; onDone runs on the read loop.
func (d *Device) sendAsync(bag string, payload []byte, onDone func(*pending)) error {
	pe := &pending{start: time.Now(), hist: &d.fleet.stats.telemetry, onDone: onDone}
	return d.publishQoS1(d.telemetryTopic(bag), payload, pe)
}

func (d *Device) telemetryTopic(bag string) string {
	return "devices/" + d.cred.DeviceID + "/messages/events/" + bag
}

func (d *Device) publishQoS1(topic string, payload []byte, pe *pending) error {
	d.mu.Lock()
	if d.closed || d.acks == nil {
		d.mu.Unlock()
		return ErrClosed
	}
	var pid uint16
	for {
		d.nextPID++
		if d.nextPID == 0 {
			d.nextPID = 1
		}
		if d.acks[d.nextPID] == nil {
			pid = d.nextPID
			break
		}
	}
	d.acks[pid] = pe
	pe.fleet = d.fleet
	d.fleet.stats.inflight.Add(1)
	d.mu.Unlock()
	d.fleet.stats.sent.Add(1)
	if err := d.write(func(b []byte) []byte { return appendPublish(b, topic, payload, 1, pid) }); err != nil {
		d.mu.Lock()
		if d.acks != nil && d.acks[pid] == pe {
			delete(d.acks, pid)
			d.fleet.stats.inflight.Add(-1)
		}
		d.mu.Unlock()
		return err
	}
	return nil
}

// Report sends a reported-properties patch and waits for the hub's 204.
// Its latency goes to the fleet's reported histogram.
func (d *Device) Report(ctx context.Context, patch []byte) error {
	pe := &pending{done: make(chan struct{})}
	if err := d.report(ctx, patch, pe); err != nil {
		return err
	}
	return d.wait(ctx, pe)
}

func (d *Device) report(_ context.Context, patch []byte, pe *pending) error {
	if pe == nil {
		pe = &pending{}
	}
	pe.start, pe.hist = time.Now(), &d.fleet.stats.reported
	d.mu.Lock()
	if d.closed || d.twin == nil {
		d.mu.Unlock()
		return ErrClosed
	}
	d.nextRID++
	rid := strconv.FormatUint(d.nextRID, 10)
	d.twin[rid] = pe
	pe.fleet = d.fleet
	d.fleet.stats.inflight.Add(1)
	d.mu.Unlock()
	topic := "$iothub/twin/PATCH/properties/reported/?$rid=" + rid
	if err := d.write(func(b []byte) []byte { return appendPublish(b, topic, patch, 0, 0) }); err != nil {
		d.mu.Lock()
		if d.twin != nil && d.twin[rid] == pe {
			delete(d.twin, rid)
			d.fleet.stats.inflight.Add(-1)
		}
		d.mu.Unlock()
		return err
	}
	return nil
}

func (d *Device) wait(ctx context.Context, pe *pending) error {
	select {
	case <-pe.done:
		return pe.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ping sends PINGREQ when nothing was written for half the keep-alive.
func (d *Device) ping(now time.Time) {
	if now.UnixNano()-d.lastWrite.Load() < int64(d.fleet.opts.KeepAlive/2) {
		return
	}
	_ = d.write(func(b []byte) []byte { return append(b, pktPingreq, 0) })
}

// Disconnect sends DISCONNECT and closes the connection.
func (d *Device) Disconnect() {
	_ = d.write(func(b []byte) []byte { return append(b, pktDisconnect, 0) })
	d.close(nil)
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	if done != nil {
		<-done
	}
}
