// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// storageFormat versions the layout Marshal writes.
const storageFormat = 1

// Marshal encodes d in the package's storage format, a compact JSON object
// that reads like the service view so a person can inspect the store:
//
//	{"format":1,"version":6,"etag":5,"tags":{...},
//	 "desired":{...,"$metadata":{...},"$version":4},
//	 "reported":{...,"$metadata":{...},"$version":1}}
//
// Unmarshal(Marshal()) gives back an equal Doc, and Marshal of that the
// same bytes. The error is always nil; it is there for the store's sake.
func (d *Doc) Marshal() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, `{"format":`...)
	b = strconv.AppendInt(b, storageFormat, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, d.version, 10)
	b = append(b, `,"etag":`...)
	b = strconv.AppendInt(b, d.etag, 10)
	b = append(b, `,"tags":`...)
	b = appendValue(b, d.tags)
	b = append(b, `,"desired":`...)
	b = appendSection(b, d.desired, d.desiredVersion, true)
	b = append(b, `,"reported":`...)
	b = appendSection(b, d.reported, d.reportedVersion, true)
	return append(b, '}'), nil
}

// errCorrupt prefixes every Unmarshal error.
var errCorrupt = errors.New("twin: corrupt stored twin")

// Unmarshal decodes a twin written by Marshal. It checks the structure it
// relies on (every member has its metadata, counters are integers) but not
// the content rules, which held when the data was written.
func Unmarshal(b []byte) (*Doc, error) {
	n, err := fastParse(b)
	if err != nil {
		n, err = parse(b) // for its account of what is wrong
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if n.kind != kindObject {
		return nil, fmt.Errorf("%w: not a JSON object", errCorrupt)
	}
	format, err := intMember(n, "format")
	if err != nil {
		return nil, err
	}
	if format != storageFormat {
		return nil, fmt.Errorf("%w: unknown format %d", errCorrupt, format)
	}
	d := &Doc{}
	if d.version, err = intMember(n, "version"); err != nil {
		return nil, err
	}
	if d.etag, err = intMember(n, "etag"); err != nil {
		return nil, err
	}
	if d.tags = n.kids["tags"]; d.tags == nil || d.tags.kind != kindObject {
		return nil, fmt.Errorf("%w: tags missing or not an object", errCorrupt)
	}
	if d.desired, d.desiredVersion, err = loadSection(n, "desired"); err != nil {
		return nil, err
	}
	if d.reported, d.reportedVersion, err = loadSection(n, "reported"); err != nil {
		return nil, err
	}
	return d, nil
}

// loadSection splits a stored section into its values, with the metadata
// attached to the nodes, and its $version.
func loadSection(n *node, name string) (*node, int64, error) {
	s := n.kids[name]
	if s == nil || s.kind != kindObject {
		return nil, 0, fmt.Errorf("%w: %s missing or not an object", errCorrupt, name)
	}
	version, err := intMember(s, "$version")
	if err != nil {
		return nil, 0, err
	}
	meta := s.kids["$metadata"]
	s.remove("$version")
	s.remove("$metadata")
	if err := attachMeta(s, meta, name); err != nil {
		return nil, 0, err
	}
	return s, version, nil
}

// attachMeta copies the stored $metadata object meta onto n and, for an
// object, onto each member; path names n in errors.
func attachMeta(n, meta *node, path string) error {
	if meta == nil || meta.kind != kindObject {
		return fmt.Errorf("%w: %s has no $metadata object", errCorrupt, path)
	}
	lu := meta.kids["$lastUpdated"]
	if lu == nil || lu.kind != kindString {
		return fmt.Errorf("%w: %s has no $lastUpdated", errCorrupt, path)
	}
	at, err := time.Parse(time.RFC3339Nano, lu.text)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errCorrupt, path, err)
	}
	n.updated = at.UTC()
	if _, ok := meta.kids["$lastUpdatedVersion"]; ok {
		if n.version, err = intMember(meta, "$lastUpdatedVersion"); err != nil {
			return err
		}
	}
	if n.kind != kindObject {
		return nil
	}
	for _, k := range n.keys {
		if err := attachMeta(n.kids[k], meta.kids[k], path+"."+k); err != nil {
			return err
		}
	}
	return nil
}

// intMember returns the integer member k of n.
func intMember(n *node, k string) (int64, error) {
	v := n.kids[k]
	if v == nil || v.kind != kindNumber {
		return 0, fmt.Errorf("%w: %s missing or not a number", errCorrupt, k)
	}
	i, err := strconv.ParseInt(v.text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", errCorrupt, k, err)
	}
	return i, nil
}

// View is the service-side view of a twin: what a GET or a query row shows,
// each section as JSON.
type View struct {
	Version  int64
	ETag     string
	Tags     []byte // JSON object
	Desired  []byte // with $metadata and $version
	Reported []byte // idem
}

// ReadView reads the service view straight from Marshal's output. The
// stored sections already have the service shape, so they are passed
// through as they are: much cheaper than Unmarshal, which a read that
// changes nothing does not need.
func ReadView(b []byte) (View, error) {
	var s struct {
		Format   int             `json:"format"`
		Version  int64           `json:"version"`
		ETag     int64           `json:"etag"`
		Tags     json.RawMessage `json:"tags"`
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return View{}, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if s.Format != storageFormat || len(s.Tags) == 0 || len(s.Desired) == 0 || len(s.Reported) == 0 {
		return View{}, fmt.Errorf("%w: not a stored twin", errCorrupt)
	}
	d := Doc{etag: s.ETag}
	return View{Version: s.Version, ETag: d.ETag(), Tags: s.Tags, Desired: s.Desired, Reported: s.Reported}, nil
}
