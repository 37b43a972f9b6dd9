// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Doc is one device or module twin: tags, desired and reported properties
// with their $metadata, the section versions, the twin version and the etag
// counter. The zero value is not usable; start from New or Unmarshal.
type Doc struct {
	tags     *node // object; tags carry no $metadata on the wire
	desired  *node // object; its own metadata is the section's root $metadata
	reported *node // idem

	desiredVersion  int64 // properties.desired.$version
	reportedVersion int64 // properties.reported.$version
	version         int64 // twin "version": +1 per write that changed something
	etag            int64 // etag counter: +1 per back-end write that changed something
}

// New returns the twin of a newly created device: no tags, empty desired
// and reported sections at $version 1, twin version 2 and etag counter 1
// (§5.3), root $metadata stamped now.
func New(now time.Time) *Doc {
	at := stampTime(now)
	d := &Doc{
		tags:            newObject(),
		desired:         newObject(),
		reported:        newObject(),
		desiredVersion:  1,
		reportedVersion: 1,
		version:         2,
		etag:            1,
	}
	// A new twin's desired root shows $lastUpdated only; $lastUpdatedVersion
	// appears with the first desired write.
	d.desired.updated = at
	d.reported.updated = at
	return d
}

// stampTime normalises a caller's clock reading to what $metadata can show.
func stampTime(now time.Time) time.Time {
	return now.UTC().Truncate(timeResolution)
}

// Clone returns a deep copy of d.
func (d *Doc) Clone() *Doc {
	c := *d
	c.tags = d.tags.clone()
	c.desired = d.desired.clone()
	c.reported = d.reported.clone()
	return &c
}

// Version returns the twin's top-level "version".
func (d *Doc) Version() int64 { return d.version }

// DesiredVersion returns properties.desired.$version.
func (d *Doc) DesiredVersion() int64 { return d.desiredVersion }

// ReportedVersion returns properties.reported.$version.
func (d *Doc) ReportedVersion() int64 { return d.reportedVersion }

// ETag returns the twin etag, unquoted: base64 of the 8-byte big-endian
// etag counter, e.g. "AAAAAAAAAAE=" for a new twin.
func (d *Doc) ETag() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(d.etag))
	return base64.StdEncoding.EncodeToString(b[:])
}

// View returns the service view of d (§5.1).
func (d *Doc) View() View {
	return View{
		Version:  d.version,
		ETag:     d.ETag(),
		Tags:     d.Tags(),
		Desired:  appendSection(nil, d.desired, d.desiredVersion, true),
		Reported: appendSection(nil, d.reported, d.reportedVersion, true),
	}
}

// DeviceSections returns the desired and reported sections as a device
// sees them (§3.8, §5.2): members and "$version", without $metadata.
func (d *Doc) DeviceSections() (desired, reported []byte) {
	return appendSection(nil, d.desired, d.desiredVersion, false), appendSection(nil, d.reported, d.reportedVersion, false)
}

// DeviceView returns what a device's twin GET answers over MQTT (§3.8,
// §5.2): {"desired":{...,"$version":n},"reported":{...,"$version":m}},
// without tags or $metadata.
func (d *Doc) DeviceView() []byte {
	b := append([]byte(nil), `{"desired":`...)
	b = appendSection(b, d.desired, d.desiredVersion, false)
	b = append(b, `,"reported":`...)
	b = appendSection(b, d.reported, d.reportedVersion, false)
	return append(b, '}')
}

// Properties returns the "properties" member of the service view (§5.1):
// both sections with their $metadata and $version.
func (d *Doc) Properties() []byte {
	b := append([]byte(nil), `{"desired":`...)
	b = appendSection(b, d.desired, d.desiredVersion, true)
	b = append(b, `,"reported":`...)
	b = appendSection(b, d.reported, d.reportedVersion, true)
	return append(b, '}')
}

// Tags returns the tags as a JSON object ({} when there are none).
func (d *Doc) Tags() []byte {
	return appendValue(nil, d.tags)
}
