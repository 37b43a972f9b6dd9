// SPDX-License-Identifier: MIT

// Package hub is the emulator's core: the identity registry, twins, direct
// methods and connection state. Every transport adapter (REST, MQTT) calls
// into one Hub; all of IoT Hub's rules live here, and nothing here knows a
// topic or a route. State is persisted through the store; the hub
// acknowledges nothing before the store has made it durable.
package hub

import (
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/metrics"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Config configures a Hub.
type Config struct {
	HostName   string          // the hub host name used in SAS resource URIs
	ExtraHosts []string        // other names clients may use in SAS resource URIs (TLS SANs)
	Policies   []Policy        // shared access policies; at least one
	DeviceCAs  *x509.CertPool  // CAs that sign certificateAuthority devices' certificates
	Logger     *slog.Logger    // nil: discard
	Clock      *clock.Clock    // nil: a clock of its own on wall time
	Retention  RetentionConfig // bounds of the recorded telemetry log
	Partitions int             // partitions of the Event Hub-compatible endpoint; DefaultPartitions if 0

	// MaxActiveJobs is how many jobs may be queued, scheduled or running
	// at once (the hub's limit per tier: 1 on Free and S1, 5 on S2, 10 on
	// S3); DefaultMaxActiveJobs if 0.
	MaxActiveJobs int

	FileUpload  *FileUploadConfig // the file-upload setting; nil: file upload is not configured
	StorageHTTP *http.Client      // how the hub reaches storage (uploads, import/export jobs); nil: http.DefaultClient

	Metrics *metrics.Metrics // where the hub reports; nil: nowhere
}

// Hub is the IoT Hub core.
type Hub struct {
	cfg        Config
	metrics    *metrics.Metrics
	db         *store.DB
	log        *slog.Logger
	hosts      []string
	clk        *clock.Clock
	policies   map[string]Policy
	partitions int

	mu        sync.Mutex
	conns     map[Identity]*Conn        // live connections, one per identity
	runtime   map[Identity]*runtimeInfo // connection state, kept across connections
	subWake   chan struct{}             // closed and replaced when a method subscription appears
	pending   map[string]*pendingMethod
	mem       memRelease // returning memory after mass disconnects (memrelease.go)
	ridSeq    uint64
	twinLock  [64]sync.Mutex // striped per-identity locks: orders writes and their notifications
	queueLock [64]sync.Mutex // striped per-device C2D queue locks: see deliverC2D
	c2d       c2dState
	queries   queryCache
	twins     twinCache // decoded twins of the identities written last (modifyTwin)
	rec       recorder
	adm       configState // automatic device management: configurations.go
	fbWake    wakeup      // feedback queued or returned to the queue

	reactorMu sync.RWMutex
	reactor   Reactor
	faults    faultState    // faults injected through the hub's hook or test control (faults.go)
	connSeq   atomic.Uint64 // numbers connections

	msgMu     sync.Mutex
	msgNotify chan struct{} // closed and replaced when telemetry is recorded
	telemetry telemetryLog  // gathers concurrent senders' messages into one commit

	forget forgetters // transports' callbacks for deleted and disabled identities

	jobs jobsState // scheduled jobs (jobs_run.go)

	uploads        fileUploadState
	fileNoteMu     sync.Mutex
	fileNoteNotify chan struct{} // closed and replaced when a file notification is queued
	ieJobs         ieJobRunner   // import/export jobs (importexport.go)

	// beforeCommit, when set (tests only), runs between modifyRecord's
	// read and its commit: a test makes a concurrent write there.
	beforeCommit func(Identity)
}

type runtimeInfo struct {
	state        string
	stateUpdated time.Time
	lastActivity time.Time
}

// New creates a Hub over an open store.
func New(db *store.DB, cfg Config) (*Hub, error) {
	if cfg.HostName == "" {
		return nil, errors.New("hub: HostName is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg:       cfg,
		metrics:   cfg.Metrics,
		db:        db,
		log:       log,
		policies:  map[string]Policy{},
		conns:     map[Identity]*Conn{},
		runtime:   map[Identity]*runtimeInfo{},
		subWake:   make(chan struct{}),
		pending:   map[string]*pendingMethod{},
		msgNotify: make(chan struct{}),

		fileNoteNotify: make(chan struct{}),
	}
	h.clk = cfg.Clock
	if h.clk == nil {
		h.clk = clock.New()
	}
	h.hosts = append(h.hosts, strings.ToLower(cfg.HostName))
	for _, x := range cfg.ExtraHosts {
		if x != "" {
			h.hosts = append(h.hosts, strings.ToLower(x))
		}
	}
	h.partitions = cfg.Partitions
	if h.partitions == 0 {
		h.partitions = DefaultPartitions
	}
	if h.partitions < 1 || h.partitions > MaxPartitions {
		return nil, fmt.Errorf("hub: %d partitions; want 1 to %d", cfg.Partitions, MaxPartitions)
	}
	pols := cfg.Policies
	if len(pols) == 0 {
		return nil, errors.New("hub: at least one shared access policy is required")
	}
	for _, p := range pols {
		if err := validateKey("primary", p.PrimaryKey); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		if p.SecondaryKey != "" {
			if err := validateKey("secondary", p.SecondaryKey); err != nil {
				return nil, fmt.Errorf("policy %s: %w", p.Name, err)
			}
		}
		h.policies[p.Name] = p
	}
	if err := h.ensurePartitionIndex(); err != nil {
		return nil, fmt.Errorf("hub: index telemetry partitions: %w", err)
	}
	if err := h.initJobs(cfg.MaxActiveJobs); err != nil {
		return nil, fmt.Errorf("hub: resume jobs: %w", err)
	}
	return h, nil
}

// Now returns the hub's current time.
func (h *Hub) Now() time.Time { return h.clk.Now() }

// Clock is the hub's clock. Moving it moves every deadline of the hub:
// tokens that expire under the new time close their connections, method
// timeouts and long-polls end, C2D messages expire.
func (h *Hub) Clock() *clock.Clock { return h.clk }

// HostName is the hub's host name.
func (h *Hub) HostName() string { return h.cfg.HostName }

// Policy returns the named shared access policy.
func (h *Hub) Policy(name string) (Policy, bool) {
	p, ok := h.policies[name]
	return p, ok
}

// Logger is the hub's logger, for adapters.
func (h *Hub) Logger() *slog.Logger { return h.log }

func (h *Hub) lockIdentity(id Identity) func() {
	m := &h.twinLock[fnv32(id.DeviceID)%uint32(len(h.twinLock))]
	m.Lock()
	return m.Unlock
}

func fnv32(s string) uint32 {
	f := fnv.New32a()
	f.Write([]byte(s))
	return f.Sum32()
}

// Close disconnects every session and stops background work. The store is
// the caller's to close.
func (h *Hub) Close() {
	h.StopJobs()
	h.stopMemRelease()
	h.mu.Lock()
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.session.Close()
	}
	h.stopIEJobs()
	h.resetFaults(true)
}

// stamp is the hub's time at the precision it writes timestamps (100 ns),
// so that a time kept in memory equals the same time read back from disk.
func (h *Hub) stamp() time.Time { return h.Now().UTC().Truncate(100 * time.Nanosecond) }
