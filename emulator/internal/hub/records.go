// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// record is what the store holds per device or module: the identity, its
// twin, and counters the hub derives etags from. One key per identity keeps
// a write to either in one put. The twin is written first: queries read
// it in place (storedTwin), and then find its sections without skipping
// the rest.
type record struct {
	Twin    json.RawMessage `json:"twin"`
	Device  *Device         `json:"device,omitempty"`
	Module  *Module         `json:"module,omitempty"`
	ETagSeq int64           `json:"etagSeq"`
	ModelID string          `json:"modelId,omitempty"`

	// Automatic device management (configurations.go): the configurations
	// that target the twin and their status, the desired paths they set,
	// and an edge device's own modules content.
	Configs     map[string]string                     `json:"configs,omitempty"`
	Applied     map[string]appliedSetting             `json:"applied,omitempty"`
	EdgeContent map[string]map[string]json.RawMessage `json:"edgeContent,omitempty"`

	twinDoc *twin.Doc
}

func bucketFor(id Identity) store.Bucket {
	if id.ModuleID == "" {
		return store.Devices
	}
	return store.Modules
}

// loadRecord reads id's record, or returns nil when absent.
func loadRecord(tx *store.Tx, id Identity) (*record, error) {
	b := tx.Peek(bucketFor(id), id.key()) // unmarshalRecord copies what it keeps
	if b == nil {
		return nil, nil
	}
	var r record
	if err := unmarshalRecord(b, &r); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", id, err)
	}
	return &r, nil
}

func (r *record) doc() (*twin.Doc, error) {
	if r.twinDoc == nil {
		d, err := twin.Unmarshal(r.Twin)
		if err != nil {
			return nil, fmt.Errorf("decode twin: %w", err)
		}
		r.twinDoc = d
	}
	return r.twinDoc, nil
}

func saveRecord(tx *store.Tx, id Identity, r *record) error {
	b, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return tx.Put(bucketFor(id), id.key(), b)
}

// encodeRecord is what saveRecord stores for r.
func encodeRecord(r *record) ([]byte, error) {
	if r.twinDoc != nil {
		b, err := r.twinDoc.Marshal()
		if err != nil {
			return nil, err
		}
		r.Twin = b
	}
	tw := r.Twin
	if len(tw) == 0 {
		return json.Marshal(r)
	}
	// The twin, most of the record, goes in as the twin engine encoded it
	// (compact and valid), not through json.Marshal, which would check and
	// compact it again: the rest is marshalled around a one-byte stand-in.
	r.Twin = json.RawMessage(twinStandIn)
	b, err := json.Marshal(r)
	r.Twin = tw
	if err != nil {
		return nil, err
	}
	head := len(twinPrefix) + len(twinStandIn)
	if len(b) < head || string(b[:head]) != twinPrefix+twinStandIn {
		return nil, fmt.Errorf("encode record: it does not start with its twin: %.40q", b)
	}
	return joinTwin(tw, b[head:]), nil
}

// joinTwin is a stored record made of its twin and the rest of its
// members (rest is what follows the twin: `,"device":...}` or `}`).
func joinTwin(tw, rest []byte) []byte {
	out := make([]byte, 0, len(twinPrefix)+len(tw)+len(rest))
	return append(append(append(out, twinPrefix...), tw...), rest...)
}

// twinStandIn holds the twin's place while encodeRecord marshals the rest.
const twinStandIn = "0"

// unmarshalRecord decodes a stored record into r, as json.Unmarshal does,
// but for the twin, which it splits off and copies without scanning it
// twice: twin.Unmarshal checks it when it is decoded.
func unmarshalRecord(b []byte, r *record) error {
	r.Twin = nil
	tw, err := unmarshalRest(b, r)
	if err != nil || tw == nil || r.Twin != nil { // a later "twin" member wins, as in json.Unmarshal
		return err
	}
	r.Twin = bytes.Clone(tw)
	return nil
}

// unmarshalRest decodes a stored record's members but its twin into v
// and returns the twin's bytes, which alias b. A record that does not
// start with its twin is decoded whole, twin included if v has one, and
// the twin returned is nil.
func unmarshalRest(b []byte, v any) (twin []byte, err error) {
	tw, rest, ok := splitTwin(b)
	if ok {
		// The rest as an object of its own: `,"device":...}` or `}`.
		rest = bytes.TrimLeft(rest, " \t\r\n")
		switch {
		case len(rest) > 0 && rest[0] == '}':
		case len(rest) > 0 && rest[0] == ',':
			rest = bytes.TrimLeft(rest[1:], " \t\r\n")
			ok = len(rest) > 0 && rest[0] == '"'
		default:
			ok = false
		}
	}
	if !ok { // not as encodeRecord writes it, or not JSON: json.Unmarshal says which
		return nil, json.Unmarshal(b, v)
	}
	obj := make([]byte, 0, len(rest)+1)
	obj = append(append(obj, '{'), rest...)
	if err := json.Unmarshal(obj, v); err != nil {
		return nil, err
	}
	return tw, nil
}

// errNoChange, returned by a modifyRecord change, writes nothing.
var errNoChange = errors.New("nothing to change")

// modifyRecord changes id's record with the decoding, merging and
// encoding done here, in the caller, and not on the store's commit
// goroutine, which every write of the hub waits for: the commit only
// checks that the stored bytes are still those change saw and writes the
// new ones. When they are not (a write that does not hold the identity's
// lock came in between), change runs again on the new record, so it must
// have no effect outside r but its own results. change runs in a read
// transaction, a snapshot, which it may read (a parent record, say);
// reads of other keys are not checked at commit. A missing identity is
// the hub's not-found error unless absentOK, when modifyRecord does
// nothing and returns nil; change returns errNoChange to write nothing.
// The caller holds the identity's lock, so
// conflicts are rare and the retries few.
func (h *Hub) modifyRecord(id Identity, absentOK bool, change func(tx *store.Tx, r *record) error) (*record, error) {
	var r *record
	err := h.modifyStored(id, absentOK, func(tx *store.Tx, old []byte) ([]byte, error) {
		r = new(record)
		if err := unmarshalRecord(old, r); err != nil {
			return nil, fmt.Errorf("decode record %s: %w", id, err)
		}
		if err := change(tx, r); err != nil {
			return nil, err
		}
		return encodeRecord(r)
	})
	if errors.Is(err, errAbsent) {
		return nil, nil
	}
	return r, err
}

// modifyTwin is modifyRecord for a change of the twin alone: it decodes
// and encodes only the twin, and keeps the rest of the stored record as
// it is (the twin comes first, see record). change gets on each attempt a
// document of its own equal to the stored twin's decoding, which it may
// change in place: decoded afresh, or the one the identity's last
// modifyTwin committed (twinCache).
func (h *Hub) modifyTwin(id Identity, change func(d *twin.Doc) error) error {
	var doc *twin.Doc // the changed twin the last attempt encoded
	var raw []byte    // and its encoding
	err := h.modifyStored(id, false, func(tx *store.Tx, old []byte) ([]byte, error) {
		doc, raw = nil, nil
		stored, rest, ok := splitTwin(old)
		if !ok { // not as encodeRecord writes it: take the long way
			r := new(record)
			if err := unmarshalRecord(old, r); err != nil {
				return nil, fmt.Errorf("decode record %s: %w", id, err)
			}
			d, err := r.doc()
			if err != nil {
				return nil, err
			}
			if err := change(d); err != nil {
				return nil, err
			}
			return encodeRecord(r)
		}
		d := h.twins.take(id, stored)
		if d == nil {
			var err error
			if d, err = twin.Unmarshal(stored); err != nil {
				return nil, fmt.Errorf("decode twin %s: %w", id, err)
			}
		}
		if err := change(d); err != nil {
			return nil, err
		}
		b, err := d.Marshal()
		if err != nil {
			return nil, err
		}
		doc, raw = d, b
		return joinTwin(b, rest), nil
	})
	if err == nil && doc != nil {
		h.twins.put(id, raw, doc)
	}
	return err
}

// twinPrefix is how a stored record starts: its twin is the first member.
const twinPrefix = `{"twin":`

// splitTwin returns the twin of a stored record and what follows it, or
// false when the record does not start with its twin.
func splitTwin(b []byte) (raw, rest []byte, ok bool) {
	if !bytes.HasPrefix(b, []byte(twinPrefix)) || len(b) == len(twinPrefix) || b[len(twinPrefix)] != '{' {
		return nil, nil, false
	}
	depth, inString := 0, false
	for i := len(twinPrefix); i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return b[len(twinPrefix) : i+1], b[i+1:], true
			}
		}
	}
	return nil, nil, false
}

// errAbsent is what modifyStored's prepare sees of a missing record
// when absence is not an error.
var errAbsent = errors.New("absent")

// modifyStored is the optimistic write under modifyRecord and
// modifyTwin: prepare turns the stored bytes into the new ones (or
// returns errNoChange) in a read transaction, and the commit writes them
// only if the stored bytes are unchanged, else prepare runs again. A
// missing record is the hub's not-found error, or errAbsent with
// absentOK.
func (h *Hub) modifyStored(id Identity, absentOK bool, prepare func(tx *store.Tx, old []byte) ([]byte, error)) error {
	bucket, key := bucketFor(id), id.key()
	for attempt := 0; ; attempt++ {
		var old, next []byte
		err := h.db.View(func(tx *store.Tx) error {
			old = tx.Peek(bucket, key)
			if old == nil {
				if absentOK {
					return errAbsent
				}
				return notFound(tx, id)
			}
			var err error
			next, err = prepare(tx, old)
			old = bytes.Clone(old) // Peek's bytes end with the transaction
			return err
		})
		if errors.Is(err, errNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.beforeCommit != nil {
			h.beforeCommit(id)
		}
		changed := false
		err = h.db.Update(func(tx *store.Tx) error {
			// Not an error: that would roll back the writes committed with it.
			if changed = !bytes.Equal(tx.Peek(bucket, key), old); changed {
				return nil
			}
			return tx.Put(bucket, key, next)
		})
		switch {
		case err != nil:
			return err
		case !changed:
			return nil
		case attempt == 100:
			return fmt.Errorf("record %s changed under 100 attempts to update it", id)
		}
	}
}

// nextGeneration returns a fresh generation id: the hub uses an opaque
// decimal string that changes when an id is deleted and re-created.
func nextGeneration(tx *store.Tx) (string, error) {
	n, err := tx.NextSequence(store.Meta)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(638000000000000000+n, 10), nil
}

// mustLoad reads id's record; a missing identity is the hub's not-found error.
func mustLoad(tx *store.Tx, id Identity) (*record, error) {
	r, err := loadRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound(tx, id)
	}
	return r, nil
}

// mustLoadTwin reads id's record and its twin document.
func mustLoadTwin(tx *store.Tx, id Identity) (*record, *twin.Doc, error) {
	r, err := mustLoad(tx, id)
	if err != nil {
		return nil, nil, err
	}
	d, err := r.doc()
	return r, d, err
}
