// SPDX-License-Identifier: MIT

package twin

import (
	"strconv"
	"time"
)

// PatchTags merges patch, a JSON object, into the tags. On error d is
// unchanged.
func (d *Doc) PatchTags(patch []byte, now time.Time) error {
	t, err := parseBody(patch, sectionTags)
	if err != nil {
		return err
	}
	_, err = d.serviceWrite(update{tags: t}, false, now)
	return err
}

// ReplaceTags replaces the tags with tags, a JSON object; null members are
// dropped. On error d is unchanged.
func (d *Doc) ReplaceTags(tags []byte, now time.Time) error {
	t, err := parseBody(tags, sectionTags)
	if err != nil {
		return err
	}
	_, err = d.serviceWrite(update{tags: t}, true, now)
	return err
}

// PatchDesired merges patch, a JSON object, into the desired properties.
// It returns the notification body for the device: the patch as sent plus
// "$version" (§3.8), or nil when nothing changed (the patch only deleted
// absent members). Top-level "$metadata" and "$version" members, which
// SDKs echo from a fetched twin, are ignored. On error d is unchanged.
func (d *Doc) PatchDesired(patch []byte, now time.Time) (notify []byte, err error) {
	p, err := parseBody(patch, sectionDesired)
	if err != nil {
		return nil, err
	}
	return d.serviceWrite(update{desired: p}, false, now)
}

// ReplaceDesired replaces the desired properties with desired, a JSON
// object; null members are dropped, echoed "$metadata"/"$version" ignored.
// It returns the notification body: the whole new desired set, null for
// each top-level member that disappeared, and "$version" (§3.8; the nulls
// are the emulator's choice, §11 item 3). A replacement always counts as a
// change. On error d is unchanged.
func (d *Doc) ReplaceDesired(desired []byte, now time.Time) (notify []byte, err error) {
	p, err := parseBody(desired, sectionDesired)
	if err != nil {
		return nil, err
	}
	return d.serviceWrite(update{desired: p}, true, now)
}

// PatchReported merges a device's reported-properties patch, a JSON
// object, and returns the reported $version after the write (unchanged
// when the patch only deleted absent members). On error d is unchanged.
func (d *Doc) PatchReported(patch []byte, now time.Time) (version int64, err error) {
	p, err := ParseReportedPatch(patch)
	if err != nil {
		return 0, err
	}
	return d.ApplyReported(p, now)
}

// ReportedPatch is a device's reported-properties patch, parsed and
// checked against every content rule. Only the section's size quota,
// which depends on the twin it is merged into, is left to ApplyReported.
type ReportedPatch struct {
	n *node
}

// ParseReportedPatch parses and checks a reported-properties patch (§5.5,
// §5.6). Parsing stops at the first value past its limits; none of it
// depends on a twin, so it belongs before any lock or transaction.
func ParseReportedPatch(b []byte) (*ReportedPatch, error) {
	n, err := parseBody(b, sectionReported)
	if err != nil {
		return nil, err
	}
	if err := checkBody(n, sectionReported); err != nil {
		return nil, err
	}
	return &ReportedPatch{n: n}, nil
}

// ApplyReported merges p into the reported properties as PatchReported
// does. p is not consumed: it may be applied again (a store may retry a
// transaction). On error d is unchanged.
func (d *Doc) ApplyReported(p *ReportedPatch, now time.Time) (version int64, err error) {
	body := p.n.clone()
	if err := checkSize(mergedSize(d.reported, body), sectionReported); err != nil {
		return 0, err
	}
	if merge(d.reported, body, stamp{at: stampTime(now)}) {
		d.reportedVersion++
		d.version++
	}
	return d.reportedVersion, nil
}

// parseBody parses the JSON body of a write to sec within the parser's
// limits for input.
func parseBody(b []byte, sec sectionID) (*node, error) {
	if n, err := fastParseLimited(b, maxParseDepth, maxParseValues); err == nil {
		return n, nil
	}
	// The decoder's account of what is wrong.
	p := newParser(b, maxParseDepth, maxParseValues)
	n, err := p.value()
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return nil, inputError(err, sections[sec].path, sections[sec].title)
	}
	return n, nil
}

// update is a back-end write: either section may be nil (absent). A
// section marked clear replaces the current one even in a merge. checked
// says the sections already passed checkBody.
type update struct {
	tags, desired           *node
	clearTags, clearDesired bool
	checked                 bool
}

// serviceWrite validates u completely, then applies it: a merge, or with
// replace a wholesale replacement of each section present. A write that
// changes tags, desired or both counts once in the twin version and etag.
// It returns the desired notification, nil when desired did not change.
func (d *Doc) serviceWrite(u update, replace bool, now time.Time) (notify []byte, err error) {
	if u.desired != nil && u.desired.kind == kindObject {
		dropEcho(u.desired)
	}
	replaceTags, replaceDesired := replace || u.clearTags, replace || u.clearDesired
	if err := check(u.tags, sectionTags, d.tags, replaceTags, u.checked); err != nil {
		return nil, err
	}
	if err := check(u.desired, sectionDesired, d.desired, replaceDesired, u.checked); err != nil {
		return nil, err
	}

	at := stampTime(now)
	tagsChanged := false
	if u.tags != nil {
		if replaceTags {
			u.tags.stampTree(stamp{at: at})
			d.tags, tagsChanged = u.tags, true
		} else {
			tagsChanged = merge(d.tags, u.tags, stamp{at: at})
		}
	}
	if u.desired != nil {
		next := d.desiredVersion + 1
		st := stamp{at: at, version: next}
		if replaceDesired {
			u.desired.stampTree(st) // drops nulls first: a member set to null is removed too
			removed := removedKeys(d.desired, u.desired)
			d.desired = u.desired
			notify = replaceNotice(d.desired, removed, next)
		} else {
			// Encode before merging: merge consumes the patch.
			body := patchNotice(u.desired, next)
			if merge(d.desired, u.desired, st) {
				notify = body
			}
		}
		if notify != nil {
			d.desiredVersion = next
		}
	}
	if tagsChanged || notify != nil {
		d.version++
		d.etag++
	}
	return notify, nil
}

// check validates a section body about to be written over cur; a nil body
// (section absent from the write) passes.
func check(body *node, sec sectionID, cur *node, replace, checked bool) error {
	if body == nil {
		return nil
	}
	if !checked {
		if err := checkBody(body, sec); err != nil {
			return err
		}
	}
	size := body.size()
	if !replace {
		size = mergedSize(cur, body)
	}
	return checkSize(size, sec)
}

// patchNotice renders a desired patch as the device receives it.
func patchNotice(patch *node, version int64) []byte {
	b := append([]byte(nil), '{')
	b = appendMembers(b, patch)
	return appendVersionMember(b, len(patch.keys) == 0, version)
}

// replaceNotice renders a desired replacement as the device receives it.
func replaceNotice(desired *node, removed []string, version int64) []byte {
	b := append([]byte(nil), '{')
	b = appendMembers(b, desired)
	for i, k := range removed {
		if i > 0 || len(desired.keys) > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ":null"...)
	}
	return appendVersionMember(b, len(desired.keys)+len(removed) == 0, version)
}

// appendVersionMember closes an object whose members are already in b with
// "$version":v and '}'. empty tells whether b holds no member yet.
func appendVersionMember(b []byte, empty bool, v int64) []byte {
	if !empty {
		b = append(b, ',')
	}
	b = append(b, `"$version":`...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, '}')
}
