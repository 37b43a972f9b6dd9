// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"time"
)

// ServiceUpdate is a service twin PATCH or PUT body, parsed and checked
// against every content rule. Only the sections' size quotas, which depend
// on the twin written to, are left to ApplyTags and ApplyDesired. It is
// not consumed by them, so it may be applied again (a store may retry a
// transaction).
type ServiceUpdate struct {
	Tags    []byte // the tags object as compact JSON; nil when the body leaves tags out
	Desired []byte // properties.desired likewise
	// ClearTags and ClearDesired report a section set to null: every member
	// goes, as the hub does (the official Node e2e suite nulls out all tags
	// and all desired properties this way). Tags or Desired is then "{}".
	ClearTags, ClearDesired bool

	tags, desired *node // the parsed sections; nil when absent
}

// ParseServiceUpdate parses and checks the body of a service twin PATCH or
// PUT (§5.4): {"tags":{...},"properties":{"desired":{...},"reported":{...}}, ...}.
// properties.reported and identity fields (deviceId, etag, version, ...)
// are ignored, as the back end cannot write them, and so are desired's
// top-level "$metadata" and "$version", which SDKs echo from a fetched twin
// (see dropEcho); what is ignored is skipped as it is read, never built.
// "desired" or "reported" outside "properties" is refused, as the hub
// refuses it, rather than silently doing nothing. Errors wrap ErrInvalid
// or ErrTooLarge.
func ParseServiceUpdate(body []byte) (ServiceUpdate, error) {
	u, err := parseServiceUpdate(body)
	if err != nil {
		return ServiceUpdate{}, err
	}
	var out ServiceUpdate
	if u.tags != nil {
		if err := checkBody(u.tags, sectionTags); err != nil {
			return ServiceUpdate{}, err
		}
		out.tags, out.Tags, out.ClearTags = u.tags, appendValue(nil, u.tags), u.clearTags
	}
	if u.desired != nil {
		if err := checkBody(u.desired, sectionDesired); err != nil {
			return ServiceUpdate{}, err
		}
		out.desired, out.Desired, out.ClearDesired = u.desired, appendValue(nil, u.desired), u.clearDesired
	}
	return out, nil
}

// ApplyTags writes the update's tags, if it has any: merged, or replaced
// with replace or when the body set them to null. On error d is unchanged.
func (d *Doc) ApplyTags(u *ServiceUpdate, replace bool, now time.Time) error {
	if u.tags == nil {
		return nil
	}
	_, err := d.serviceWrite(update{tags: u.tags.clone(), clearTags: u.ClearTags, checked: true}, replace, now)
	return err
}

// ApplyDesired writes the update's desired properties, if it has any, as
// ApplyTags does, and returns their notification (see PatchDesired and
// ReplaceDesired). On error d is unchanged.
func (d *Doc) ApplyDesired(u *ServiceUpdate, replace bool, now time.Time) (notify []byte, err error) {
	if u.desired == nil {
		return nil, nil
	}
	return d.serviceWrite(update{desired: u.desired.clone(), clearDesired: u.ClearDesired, checked: true}, replace, now)
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

// parseServiceUpdate reads the members of a service body that can be
// written, within the parser's limits for input, skipping the rest.
func parseServiceUpdate(body []byte) (update, error) {
	p := newParser(body, maxParseDepth, maxParseValues)
	n, err := p.serviceBody()
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return update{}, inputError(err, "twin", "Twin")
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

// serviceBody reads a service body keeping only tags and
// properties.desired (less its echoed $metadata and $version). A
// "desired" or "reported" member of the root is skipped too, but noted:
// it is refused.
func (p *parser) serviceBody() (*node, error) {
	echo := func(k string) func() (*node, error) {
		if k == "$metadata" || k == "$version" {
			return nil
		}
		return p.value
	}
	desired := func(k string) func() (*node, error) {
		if k == "desired" {
			return func() (*node, error) { return p.objectOr(echo) }
		}
		return nil
	}
	root := func(k string) func() (*node, error) {
		switch k {
		case "tags":
			return p.value
		case "properties":
			return func() (*node, error) { return p.objectOr(desired) }
		case "desired", "reported":
			return func() (*node, error) { return &node{kind: kindNull}, p.skip() }
		}
		return nil
	}
	return p.objectOr(root)
}

// objectOr reads a value; if it is an object, its members go through keep.
func (p *parser) objectOr(keep func(string) func() (*node, error)) (*node, error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return p.valueFrom(tok)
	}
	if err := p.spend(); err != nil {
		return nil, err
	}
	if err := p.open(); err != nil {
		return nil, err
	}
	return p.object(keep)
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
