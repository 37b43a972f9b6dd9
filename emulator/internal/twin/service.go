// SPDX-License-Identifier: MIT

package twin

import "time"

// ServiceUpdate is a parsed service twin PATCH or PUT body.
type ServiceUpdate struct {
	Tags    []byte // the tags object as compact JSON; nil when the body leaves tags out
	Desired []byte // properties.desired likewise
	// ClearTags and ClearDesired report a section set to null: every member
	// goes, as the hub does (the official Node e2e suite nulls out all tags
	// and all desired properties this way). Tags or Desired is then "{}".
	ClearTags, ClearDesired bool
}

// ParseServiceUpdate reads the body of a service twin PATCH or PUT (§5.4):
// {"tags":{...},"properties":{"desired":{...},"reported":{...}}, ...}.
// properties.reported and identity fields (deviceId, etag, version, ...)
// are ignored, as the back end cannot write them; "desired" or "reported"
// outside "properties" is refused, as the hub refuses it, rather than
// silently doing nothing. Errors wrap ErrInvalid. The sections' content is
// checked when written, not here.
func ParseServiceUpdate(body []byte) (ServiceUpdate, error) {
	u, err := parseServiceUpdate(body)
	if err != nil {
		return ServiceUpdate{}, err
	}
	var out ServiceUpdate
	if u.tags != nil {
		out.Tags, out.ClearTags = appendValue(nil, u.tags), u.clearTags
	}
	if u.desired != nil {
		out.Desired, out.ClearDesired = appendValue(nil, u.desired), u.clearDesired
	}
	return out, nil
}

// PatchTwin applies a service twin PATCH body (§5.4): tags and
// properties.desired are merged, everything else is ignored. Both sections
// are checked before either is written, so on error d is unchanged. It
// returns the desired notification as PatchDesired does.
func (d *Doc) PatchTwin(body []byte, now time.Time) (notify []byte, err error) {
	u, err := parseServiceUpdate(body)
	if err != nil {
		return nil, err
	}
	return d.serviceWrite(u, false, now)
}

// ReplaceTwin applies a service twin PUT body (§5.4): the tags and
// properties.desired present in it replace the current ones; sections the
// body leaves out stay as they are (§11 item 4). On error d is unchanged.
// It returns the desired notification as ReplaceDesired does.
func (d *Doc) ReplaceTwin(body []byte, now time.Time) (notify []byte, err error) {
	u, err := parseServiceUpdate(body)
	if err != nil {
		return nil, err
	}
	return d.serviceWrite(u, true, now)
}

func parseServiceUpdate(body []byte) (update, error) {
	n, err := parse(body)
	if err != nil {
		return update{}, invalidf("", "malformed JSON in the twin update: %v", err)
	}
	if n.kind != kindObject {
		return update{}, invalidf("", "the twin update must be a JSON object")
	}
	for _, k := range []string{"desired", "reported"} {
		if _, ok := n.kids[k]; ok {
			return update{}, invalidf(k, "%s must be inside \"properties\": {\"properties\":{\"%s\":{...}}}", k, k)
		}
	}
	var u update
	if u.tags, u.clearTags, err = section(n, "tags", "tags"); err != nil {
		return update{}, err
	}
	props, ok := n.kids["properties"]
	if !ok || props.kind == kindNull {
		return u, nil
	}
	if props.kind != kindObject {
		return update{}, invalidf("properties", "properties must be a JSON object")
	}
	if u.desired, u.clearDesired, err = section(props, "desired", "properties.desired"); err != nil {
		return update{}, err
	}
	return u, nil
}

// section returns the object member k of n: nil when it is absent, an
// empty object with clear set when it is null.
func section(n *node, k, path string) (v *node, clear bool, err error) {
	v, ok := n.kids[k]
	switch {
	case !ok:
		return nil, false, nil
	case v.kind == kindNull:
		return newObject(), true, nil
	case v.kind != kindObject:
		return nil, false, invalidf(path, "%s must be a JSON object", path)
	}
	return v, false, nil
}
