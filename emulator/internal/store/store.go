// SPDX-License-Identifier: MIT

// Package store persists the hub's state in one bbolt file. It holds bytes:
// the hub decides what they mean. Every Update returns only after its
// transaction is committed and fsync'd, so the hub may acknowledge a write as
// soon as Update returns. Concurrent updates are group-committed: while one
// commit is syncing, the next batch gathers, so throughput grows with
// concurrency without weakening durability and without a fixed batching delay.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names a top-level keyspace.
type Bucket string

// The buckets the hub uses. All are created on open.
const (
	Devices  Bucket = "devices"  // deviceId -> device record
	Modules  Bucket = "modules"  // deviceId \x00 moduleId -> module record
	Meta     Bucket = "meta"     // counters and settings
	Messages Bucket = "messages" // big-endian sequence -> recorded telemetry
	C2D      Bucket = "c2d"      // deviceId \x00 big-endian seq -> queued cloud-to-device message
	Feedback Bucket = "feedback" // big-endian sequence -> cloud-to-device delivery feedback

	// PartitionIndex: partition byte + big-endian partition sequence ->
	// telemetry log sequence + enqueued time (the Event Hub-compatible view).
	PartitionIndex Bucket = "partitions"

	// FeedbackQueue holds the feedback messages the service receives over
	// HTTPS: big-endian sequence -> a batch of feedback records.
	FeedbackQueue Bucket = "feedbackqueue"

	// Jobs holds scheduled jobs (Jobs v2): jobId -> job record.
	Jobs Bucket = "jobs"
	// DeviceJobs holds each job's per-device records (the devices.jobs
	// collection): jobId \x00 deviceId -> device job record.
	DeviceJobs Bucket = "devicejobs"

	// Configurations holds automatic device management configurations:
	// configuration id -> configuration.
	Configurations Bucket = "configurations"

	// FileUploads holds the file uploads a device started and has not
	// notified: deviceId \x00 correlationId -> upload record.
	FileUploads Bucket = "fileuploads"

	// FileNotifications is the service-bound file-upload notification
	// queue: big-endian sequence -> notification message.
	FileNotifications Bucket = "filenotifications"

	// ImportExportJobs holds the registry's import/export jobs (POST
	// /jobs/create), not those of /jobs/v2: jobId -> job record.
	ImportExportJobs Bucket = "importexportjobs"

	// The Device Provisioning Service's state (package dps), keyed by the
	// lower-cased id: DPS ids are case-insensitive.
	DPSEnrollments   Bucket = "dpsenrollments"   // registrationId -> individual enrollment
	DPSGroups        Bucket = "dpsgroups"        // enrollmentGroupId -> enrollment group
	DPSRegistrations Bucket = "dpsregistrations" // registrationId -> registration state and last operation
)

var allBuckets = []Bucket{Devices, Modules, Meta, Messages, C2D, Feedback, PartitionIndex, FeedbackQueue, Jobs, DeviceJobs,
	Configurations, FileUploads, FileNotifications, ImportExportJobs, DPSEnrollments, DPSGroups, DPSRegistrations}

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("database is in use by another process")

// Options tune Open.
type Options struct {
	LockTimeout time.Duration // how long to wait for another process's lock; default 1s
	NoSync      bool          // skip fsync: only for throwaway (in-memory) stores
}

// DB is an open store.
type DB struct {
	bolt   *bolt.DB
	path   string
	remove bool // delete the file on Close (in-memory mode)
	ops    chan *op
	done   chan struct{}

	// closeMu orders Update's send on ops before Close closes it: senders
	// hold it shared, Close exclusively. A sender blocked on a full queue
	// holds it until the committer takes its op, which the committer does
	// until ops is closed, so Close never waits forever.
	closeMu sync.RWMutex
	closed  bool

	onCommit atomic.Pointer[func(n int, d time.Duration)] // see OnCommit
}

// OnCommit makes the store tell f each group commit's size and how long
// its transaction took, fsync included (the metrics).
func (db *DB) OnCommit(f func(n int, d time.Duration)) { db.onCommit.Store(&f) }

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store is closed")

type op struct {
	fn  func(*Tx) error
	err chan error
}

// Open opens or creates the database file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	bdb, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	bdb.NoSync = opts.NoSync
	if err := bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("initialise %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path, ops: make(chan *op, 1024), done: make(chan struct{})}
	go db.committer()
	return db, nil
}

// openBolt opens the file and turns bbolt's failures into one-line errors
// that name the problem, because a start-up failure is read by a person.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer func() {
		// bbolt can panic on some corrupt files; a corrupt file is an error, not a crash.
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("database file %s is corrupt (%v): move it away or delete it to start empty", path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// The telemetry log frees pages at its head with every append once
		// retention trims it; an array freelist written with each commit
		// costs the commit goroutine in proportion to the free pages. The
		// map freelist, rebuilt from the tree at open instead of stored, is
		// what etcd runs bbolt with for the same reason.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is locked; stop the other emulator or use another --data-dir", ErrLocked, path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("database file %s is corrupt (%v): move it away or delete it to start empty", path, err)
	default:
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
}

// OpenTemp opens a throwaway store in a temporary file that Close removes.
func OpenTemp() (*DB, error) {
	dir, err := os.MkdirTemp("", "iothub-mem-*")
	if err != nil {
		return nil, err
	}
	db, err := Open(filepath.Join(dir, "hub.db"), Options{NoSync: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	db.remove = true
	return db, nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Close waits for queued updates and closes the file. Later updates fail
// with ErrClosed; a second Close does nothing.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.ops)
	db.closeMu.Unlock()
	<-db.done
	err := db.bolt.Close()
	if db.remove {
		os.RemoveAll(filepath.Dir(db.path))
	}
	return err
}

// View runs fn in a read-only transaction: a consistent snapshot.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction and returns once the
// transaction is durable. fn may be run more than once (when another update
// in the same group fails) and must not have effects outside the
// transaction other than setting its own results.
func (db *DB) Update(fn func(*Tx) error) error {
	o := &op{fn: fn, err: make(chan error, 1)}
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return ErrClosed
	}
	db.ops <- o
	db.closeMu.RUnlock()
	return <-o.err
}

const maxGroup = 256

// committer runs queued updates in groups, one bbolt transaction per group.
func (db *DB) committer() {
	defer close(db.done)
	for first := range db.ops {
		group := []*op{first}
	drain:
		for len(group) < maxGroup {
			select {
			case o, ok := <-db.ops:
				if !ok {
					break drain
				}
				group = append(group, o)
			default:
				break drain
			}
		}
		start := time.Now()
		db.commit(group)
		if f := db.onCommit.Load(); f != nil {
			(*f)(len(group), time.Since(start))
		}
	}
}

// commit runs the group in one transaction. When an op fails, the
// transaction is rolled back, that op gets its error, and the rest are
// retried without it, so one failure never leaks partial writes.
func (db *DB) commit(group []*op) {
	for len(group) > 0 {
		failed := -1
		var failErr error
		err := db.bolt.Update(func(btx *bolt.Tx) error {
			tx := &Tx{tx: btx}
			for i, o := range group {
				if err := safeRun(o.fn, tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			group[failed].err <- failErr
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		for _, o := range group {
			o.err <- err
		}
		return
	}
}

func safeRun(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store update panicked: %v", r)
		}
	}()
	return fn(tx)
}

// Tx is a transaction. Byte slices it returns are copies, valid after the
// transaction ends.
type Tx struct{ tx *bolt.Tx }

func (t *Tx) bucket(b Bucket) *bolt.Bucket {
	bk := t.tx.Bucket([]byte(b))
	if b == Messages || b == PartitionIndex {
		// Logs: keys only ever grow (per partition for the index), so a
		// page split leaves the left page for good. bbolt's default
		// leaves it half empty: twice the pages to write, walk and keep.
		bk.FillPercent = 0.95
	}
	return bk
}

// Get returns the value at key, or nil.
func (t *Tx) Get(b Bucket, key string) []byte {
	v := t.bucket(b).Get([]byte(key))
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

// Peek returns the value at key, or nil, without copying it: it is valid
// only until the transaction ends and must not be modified. A commit that
// checks a record is unchanged compares with it.
func (t *Tx) Peek(b Bucket, key string) []byte {
	return t.bucket(b).Get([]byte(key))
}

// Put stores val at key.
func (t *Tx) Put(b Bucket, key string, val []byte) error {
	return t.bucket(b).Put([]byte(key), val)
}

// Delete removes key.
func (t *Tx) Delete(b Bucket, key string) error {
	return t.bucket(b).Delete([]byte(key))
}

// OnCommit runs fn once the transaction is durable, and never if it is
// rolled back (an update retried in a group registers it again): the place
// to wake readers of what it wrote, who would otherwise look too early.
func (t *Tx) OnCommit(fn func()) { t.tx.OnCommit(fn) }

// NextSequence returns the bucket's next sequence number (starting at 1).
func (t *Tx) NextSequence(b Bucket) (uint64, error) {
	return t.bucket(b).NextSequence()
}

// Sequence returns the bucket's current sequence number: the last one
// NextSequence handed out.
func (t *Tx) Sequence(b Bucket) uint64 { return t.bucket(b).Sequence() }

// ForEach calls fn for each key with the given prefix, in key order, from
// the first key >= start (start "" means the prefix itself). The value is
// only valid during the call. Returning ErrStop ends the walk without error.
func (t *Tx) ForEach(b Bucket, prefix, start string, fn func(key string, val []byte) error) error {
	return t.ForEachRaw(b, prefix, start, func(k, v []byte) error { return fn(string(k), v) })
}

// ForEachRaw is ForEach with the key as bytes: it saves a string per key
// on long walks. Key and value are only valid during the call.
func (t *Tx) ForEachRaw(b Bucket, prefix, start string, fn func(key, val []byte) error) error {
	c := t.bucket(b).Cursor()
	seek := prefix
	if start > seek {
		seek = start
	}
	for k, v := c.Seek([]byte(seek)); k != nil; k, v = c.Next() {
		if len(k) < len(prefix) || string(k[:len(prefix)]) != prefix {
			return nil
		}
		if err := fn(k, v); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Last returns the last key with the given prefix and its value (a copy),
// or "" and nil when there is none.
func (t *Tx) Last(b Bucket, prefix string) (string, []byte) {
	c := t.bucket(b).Cursor()
	var k, v []byte
	if end := prefixEnd(prefix); end == nil {
		k, v = c.Last()
	} else if k, _ = c.Seek(end); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || len(k) < len(prefix) || string(k[:len(prefix)]) != prefix {
		return "", nil
	}
	return string(k), append([]byte(nil), v...)
}

// prefixEnd is the first key after every key with the prefix, or nil when
// no such key exists (an empty prefix, or one of only 0xff bytes).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Count returns the number of keys in b with the given prefix.
func (t *Tx) Count(b Bucket, prefix string) int {
	if prefix == "" {
		return t.bucket(b).Stats().KeyN
	}
	n := 0
	_ = t.ForEach(b, prefix, "", func(string, []byte) error { n++; return nil })
	return n
}

// ErrStop ends a ForEach walk early.
var ErrStop = errors.New("stop")
