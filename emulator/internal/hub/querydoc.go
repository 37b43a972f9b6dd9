// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// storedTwin is a twin as a query reads it: the stored record's bytes,
// read in place during the walk. The paths queries use most (deviceId,
// tags, desired and reported properties, status, version, etag, modelId)
// are answered from the stored sections, which have the service view's
// shape already; any other path renders the service view exactly as GET
// /twins/{id} would, once per record, and reads it from there. So a query
// costs about one pass over the bytes before what it reads, and only the
// rows it returns are rendered.
type storedTwin struct {
	h       *Hub
	tx      *store.Tx
	key     []byte // the store key: deviceId, or deviceId \x00 moduleId
	rec     []byte // the stored record, valid during the walk only
	module  bool
	parents *parentCache

	twin     []byte // the record's "twin" member; nil until located
	sections [3][]byte
	located  uint8 // bit i: sections[i] located
	view     []byte
	viewDone bool
}

// parentCache keeps the device record of the modules being walked: they
// come in key order, so one entry is enough.
type parentCache struct {
	id  string
	rec *record
}

const (
	secTags = iota
	secDesired
	secReported
)

var sectionNames = [3]string{"tags", "desired", "reported"}

func (d *storedTwin) reset(key, rec []byte) {
	d.key, d.rec = key, rec
	d.twin, d.located, d.view, d.viewDone = nil, 0, nil, false
	d.sections = [3][]byte{}
}

// ids splits the key into device and module id.
func (d *storedTwin) ids() (dev, mod []byte) {
	if i := bytes.IndexByte(d.key, 0); i >= 0 {
		return d.key[:i], d.key[i+1:]
	}
	return d.key, nil
}

// member returns the raw value of a top-level member of b (an object).
func member(b []byte, name string) []byte { return query.RawMember(b, name) }

// memberFrom returns b from the start of a top-level member's value on:
// lookups in it need not know where it ends.
func memberFrom(b []byte, name string) []byte { return query.RawMemberFrom(b, name) }

func (d *storedTwin) twinBytes() []byte {
	if d.twin == nil {
		d.twin = memberFrom(d.rec, "twin")
		if d.twin == nil {
			d.twin = []byte{} // corrupt: every lookup undefined, rendering reports it
		}
	}
	return d.twin
}

func (d *storedTwin) section(i int) []byte {
	if d.located&(1<<i) == 0 {
		d.sections[i] = memberFrom(d.twinBytes(), sectionNames[i])
		d.located |= 1 << i
	}
	return d.sections[i]
}

// lookIn answers path within raw (an object or value), undefined when raw
// is missing.
func lookIn(raw []byte, path query.Path) (query.Value, bool) {
	if raw == nil {
		return query.Value{}, false
	}
	return query.RawDocument(raw).Lookup(path)
}

// Lookup implements query.Document.
func (d *storedTwin) Lookup(path query.Path) (query.Value, bool) {
	if len(path) == 0 || path[0].IsIndex {
		return d.viewLookup(path)
	}
	rest := path[1:]
	switch path[0].Name {
	case "deviceId":
		if len(rest) > 0 {
			return query.Value{}, false
		}
		dev, _ := d.ids()
		return query.StringValue(dev), true
	case "moduleId":
		_, mod := d.ids()
		if len(rest) > 0 || !d.module {
			return query.Value{}, false
		}
		return query.StringValue(mod), true
	case "tags":
		return lookIn(d.section(secTags), rest)
	case "properties":
		if len(rest) > 0 && !rest[0].IsIndex {
			switch rest[0].Name {
			case "desired":
				return lookIn(d.section(secDesired), rest[1:])
			case "reported":
				return lookIn(d.section(secReported), rest[1:])
			}
			return query.Value{}, false
		}
	case "version":
		return lookIn(memberFrom(d.twinBytes(), "version"), rest)
	case "etag":
		n, err := strconv.ParseInt(string(member(d.twinBytes(), "etag")), 10, 64)
		if err != nil || len(rest) > 0 {
			return query.Value{}, false
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		return query.StringValue([]byte(base64.StdEncoding.EncodeToString(b[:]))), true
	case "modelId":
		if len(rest) > 0 {
			return query.Value{}, false
		}
		if m := member(d.rec, "modelId"); m != nil {
			return lookIn(m, nil)
		}
		return query.StringValue(nil), true // the view always has it, "" when none
	case "status", "capabilities", "deviceScope":
		if !d.module {
			// A device's own fields, stored as the view shows them.
			return lookIn(d.rec, path2("device", path))
		}
	}
	return d.viewLookup(path)
}

// path2 prefixes path with one member name.
func path2(first string, path query.Path) query.Path {
	return append(query.Path{{Name: first}}, path...)
}

// viewLookup answers from the rendered service view.
func (d *storedTwin) viewLookup(path query.Path) (query.Value, bool) {
	if !d.viewDone {
		d.viewDone = true
		d.view, _ = d.render()
	}
	return lookIn(d.view, path)
}

// render is the twin as GET /twins/{id} shows it.
func (d *storedTwin) render() ([]byte, error) {
	var r record
	if err := unmarshalRecord(d.rec, &r); err != nil {
		return nil, err
	}
	dev, mod := d.ids()
	id := Identity{DeviceID: string(dev)}
	var parent *record
	if d.module {
		id.ModuleID = string(mod)
		parent = d.parents.get(d.tx, id.DeviceID)
	}
	tw, err := d.h.viewOf(d.tx, id, &r, parent)
	if err != nil {
		return nil, err
	}
	return json.Marshal(tw)
}

func (p *parentCache) get(tx *store.Tx, deviceID string) *record {
	if p.rec == nil || p.id != deviceID {
		p.id = deviceID
		p.rec, _ = loadRecord(tx, Identity{DeviceID: deviceID})
	}
	return p.rec
}
