// SPDX-License-Identifier: MIT

// Package fleet simulates many IoT Hub devices over MQTT from one process,
// for load tests: a lean client (one goroutine per connection, writes by the
// caller) that sends telemetry at a given rate and size, answers direct
// methods, reports properties, acknowledges desired patches and C2D
// messages, and keeps latency histograms. It works against the emulator and
// against a real hub; `iothub simulate` and the system benchmarks use it.
package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Fleet.
type Options struct {
	HostName string      // the hub's host name: SAS resource, MQTT username, TLS server name
	Addr     string      // MQTT over TLS address to dial; HostName:8883 when empty
	TLS      *tls.Config // root CAs and the like; ServerName defaults to HostName

	Devices []Credential

	// SourceAddrs are local IP addresses to dial from, used in turn (a
	// host has about 28,000 ephemeral ports per source and destination).
	SourceAddrs []string

	PersistentSession bool          // connect with CleanSession=0
	C2D               bool          // subscribe to cloud-to-device messages
	AckDesired        bool          // answer each desired patch with a reported {"desiredAck":{"version":V}}
	MethodResponse    []byte        // payload of every method answer (status 200); {} when nil
	KeepAlive         time.Duration // MQTT keep-alive; default 4 minutes
	TokenLifetime     time.Duration // SAS token lifetime; default 24 hours
	ConnectTimeout    time.Duration // per connection attempt; default 30 s
	WriteTimeout      time.Duration // per write; default 30 s
	ConnectParallel   int           // connection attempts in flight; default 32
	Reconnect         bool          // reconnect lost devices, with backoff

	// Echo publishes every cloud-to-device message back as telemetry
	// with the same property bag, so that a Requester can measure a
	// request and reply through a plain MQTT broker (a baseline).
	Echo bool
}

// Fleet is a set of simulated devices.
type Fleet struct {
	opts      Options
	tlsConfig *tls.Config
	devices   []*Device
	sources   []net.Addr
	stats     stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stats are the fleet's counters since New.
type stats struct {
	sent      atomic.Uint64 // QoS 1 telemetry messages sent
	methods   atomic.Uint64 // method requests answered
	desired   atomic.Uint64 // desired patches received
	c2d       atomic.Uint64 // C2D messages received
	errors    atomic.Uint64 // failed operations
	lostConns atomic.Uint64 // connections that ended without Close
	connected atomic.Int64
	inflight  atomic.Int64 // requests sent and not answered yet

	telemetry Histogram // send to PUBACK
	reported  Histogram // reported patch to its 204
	connect   Histogram // dial to SUBACK
}

// New prepares a fleet; Connect connects it.
func New(opts Options) (*Fleet, error) {
	if opts.HostName == "" {
		return nil, errors.New("fleet: HostName is required")
	}
	if opts.Addr == "" {
		opts.Addr = net.JoinHostPort(opts.HostName, "8883")
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 4 * time.Minute
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.ConnectParallel <= 0 {
		opts.ConnectParallel = 32
	}
	f := &Fleet{opts: opts}
	f.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLS != nil {
		f.tlsConfig = opts.TLS.Clone()
	}
	if f.tlsConfig.ServerName == "" {
		host, _, err := net.SplitHostPort(opts.HostName)
		if err != nil {
			host = opts.HostName
		}
		f.tlsConfig.ServerName = host
	}
	for _, s := range opts.SourceAddrs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("fleet: source address %q is not an IP address", s)
		}
		f.sources = append(f.sources, &net.TCPAddr{IP: ip})
	}
	for _, c := range opts.Devices {
		if c.DeviceID == "" || (c.Key == "") == (c.Cert == nil) {
			return nil, fmt.Errorf("fleet: device %q needs an id and either a key or a certificate", c.DeviceID)
		}
		f.devices = append(f.devices, &Device{cred: c, fleet: f})
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go f.pinger()
	return f, nil
}

// Devices returns the fleet's devices in the order of Options.Devices.
func (f *Fleet) Devices() []*Device { return f.devices }

// Connected is the number of devices connected now.
func (f *Fleet) Connected() int { return int(f.stats.connected.Load()) }

// Connect connects every device that is not connected, ConnectParallel at
// a time, and returns the number of failures and the first error. progress,
// when set, is called after each attempt.
func (f *Fleet) Connect(ctx context.Context, progress func(done, failed int)) (int, error) {
	sem := make(chan struct{}, f.opts.ConnectParallel)
	var mu sync.Mutex
	var firstErr error
	var done, failed int
	var wg sync.WaitGroup
	for i, d := range f.devices {
		if d.Connected() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return failed, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := f.connectOne(ctx, d, i)
			mu.Lock()
			done++
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", d.ID(), err)
				}
			}
			if progress != nil {
				progress(done, failed)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return failed, firstErr
}

func (f *Fleet) connectOne(ctx context.Context, d *Device, i int) error {
	var local net.Addr
	if len(f.sources) > 0 {
		local = f.sources[i%len(f.sources)]
	}
	start := time.Now()
	if err := d.connect(ctx, local); err != nil {
		f.stats.errors.Add(1)
		return err
	}
	f.stats.connect.Record(time.Since(start))
	f.stats.connected.Add(1)
	return nil
}

// lost is called by a device's read loop when its connection ends.
func (f *Fleet) lost(d *Device, err error) {
	f.stats.connected.Add(-1)
	if f.ctx.Err() != nil {
		return
	}
	f.stats.lostConns.Add(1)
	if !f.opts.Reconnect {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for attempt := 0; f.ctx.Err() == nil; attempt++ {
			wait := min(time.Second<<min(attempt, 5), 30*time.Second)
			wait = wait/2 + rand.N(wait/2+1)
			select {
			case <-time.After(wait):
			case <-f.ctx.Done():
				return
			}
			idx := 0
			for i, x := range f.devices {
				if x == d {
					idx = i
				}
			}
			if f.connectOne(f.ctx, d, idx) == nil {
				return
			}
		}
	}()
}

// pinger keeps idle connections alive: one goroutine for the whole fleet,
// not a timer per device.
func (f *Fleet) pinger() {
	defer f.wg.Done()
	t := time.NewTicker(max(f.opts.KeepAlive/8, time.Second))
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case now := <-t.C:
			for _, d := range f.devices {
				if d.Connected() {
					d.ping(now)
				}
			}
		}
	}
}

// Close disconnects every device.
func (f *Fleet) Close() {
	f.cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, d := range f.devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.Disconnect()
		}()
	}
	wg.Wait()
	f.wg.Wait()
}

// Load describes traffic to generate.
type Load struct {
	// Telemetry: messages per second over the whole fleet, spread over
	// the connected devices; negative: closed loop, every device sending
	// its next message as soon as the last is acknowledged.
	TelemetryRate float64
	MessageSize   int    // telemetry body bytes; default 256
	Properties    string // telemetry property bag (URL-encoded), e.g. "type=sim"

	// Reported properties: patches per second over the whole fleet;
	// negative: closed loop per device, as for telemetry.
	ReportRate float64

	// Devices limits the load to the first n devices; 0: all.
	Devices int
}

// Run generates load until ctx ends.
func (f *Fleet) Run(ctx context.Context, l Load) {
	if l.MessageSize <= 0 {
		l.MessageSize = 256
	}
	devs := f.devices
	if l.Devices > 0 && l.Devices < len(devs) {
		devs = devs[:l.Devices]
	}
	var wg sync.WaitGroup
	body := payload(l.MessageSize)
	if l.TelemetryRate != 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.drive(ctx, devs, l.TelemetryRate, func(ctx context.Context, d *Device, wait bool) error {
				if wait {
					return d.Send(ctx, l.Properties, body)
				}
				return d.sendAsync(l.Properties, body, nil)
			})
		}()
	}
	if l.ReportRate != 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n atomic.Uint64
			f.drive(ctx, devs, l.ReportRate, func(ctx context.Context, d *Device, wait bool) error {
				patch := []byte(`{"sim":{"seq":` + strconv.FormatUint(n.Add(1), 10) + `,"at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}}`)
				if wait {
					return d.Report(ctx, patch)
				}
				return d.report(ctx, patch, nil)
			})
		}()
	}
	wg.Wait()
}

// drive calls op on the devices: closed loop (rate < 0), one goroutine per
// device, or open loop at rate per second over all of them from one pacer.
func (f *Fleet) drive(ctx context.Context, devs []*Device, rate float64, op func(context.Context, *Device, bool) error) {
	if rate < 0 {
		var wg sync.WaitGroup
		for _, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if !d.Connected() {
						select {
						case <-time.After(100 * time.Millisecond):
						case <-ctx.Done():
						}
						continue
					}
					if err := op(ctx, d, true); err != nil && ctx.Err() == nil {
						f.stats.errors.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start, sent, next := time.Now(), 0.0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := rate * now.Sub(start).Seconds()
			for sent < due && ctx.Err() == nil {
				sent++
				d := devs[next%len(devs)]
				next++
				if !d.Connected() {
					continue
				}
				if err := op(ctx, d, false); err != nil {
					f.stats.errors.Add(1)
				}
			}
		}
	}
}

func payload(n int) []byte {
	b := make([]byte, n)
	const text = `{"temperature":21.5,"humidity":40,"pad":"`
	copy(b, text)
	for i := len(text); i < n; i++ {
		b[i] = 'x'
	}
	if n > len(text)+2 {
		b[n-2], b[n-1] = '"', '}'
	}
	return b
}

// Drain waits up to timeout for the answers to what was sent, so that a
// summary taken after a load counts them; it reports whether all came.
func (f *Fleet) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for f.stats.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Stats is a snapshot of the fleet's counters.
type Stats struct {
	At        time.Time
	Connected int
	Sent      uint64 // telemetry messages sent
	Acked     uint64 // telemetry messages acknowledged
	Reported  uint64 // reported patches acknowledged
	Methods   uint64 // method requests answered
	Desired   uint64 // desired patches received
	C2D       uint64 // C2D messages received
	Errors    uint64
	Lost      uint64 // connections lost

	Telemetry, Reports, Connects HistogramSnapshot
}

// Stats returns the counters now.
func (f *Fleet) Stats() Stats {
	s := Stats{
		At:        time.Now(),
		Connected: f.Connected(),
		Sent:      f.stats.sent.Load(),
		Methods:   f.stats.methods.Load(),
		Desired:   f.stats.desired.Load(),
		C2D:       f.stats.c2d.Load(),
		Errors:    f.stats.errors.Load(),
		Lost:      f.stats.lostConns.Load(),
		Telemetry: f.stats.telemetry.Snapshot(),
		Reports:   f.stats.reported.Snapshot(),
		Connects:  f.stats.connect.Snapshot(),
	}
	s.Acked, s.Reported = s.Telemetry.Count, s.Reports.Count
	return s
}
