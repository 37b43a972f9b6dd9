// SPDX-License-Identifier: MIT

package twin

import "time"

// ParseServiceUpdate reads the body of a service twin PATCH or PUT (§5.4):
// {"tags":{...},"properties":{"desired":{...},"reported":{...}}, ...}. It
// returns the tags and desired objects as compact JSON and whether each is
// present. A member that is absent or null counts as not present;
// properties.reported and identity fields (deviceId, etag, version, ...)
// are ignored, as the hub cannot be written there by the back end. Errors
// wrap ErrInvalid. The sections' content is checked when written, not here.
func ParseServiceUpdate(body []byte) (tags, desired []byte, hasTags, hasDesired bool, err error) {
	u, err := parseServiceUpdate(body)
	if err != nil {
		return nil, nil, false, false, err
	}
	if u.tags != nil {
		tags, hasTags = appendValue(nil, u.tags), true
	}
	if u.desired != nil {
		desired, hasDesired = appendValue(nil, u.desired), true
	}
	return tags, desired, hasTags, hasDesired, nil
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
	var u update
	if u.tags, err = member(n, "tags", "tags"); err != nil {
		return update{}, err
	}
	props, err := member(n, "properties", "properties")
	if err != nil || props == nil {
		return u, err
	}
	if u.desired, err = member(props, "desired", "properties.desired"); err != nil {
		return update{}, err
	}
	return u, nil
}

// member returns the object member k of n, nil when it is absent or null.
func member(n *node, k, path string) (*node, error) {
	v, ok := n.kids[k]
	if !ok || v.kind == kindNull {
		return nil, nil
	}
	if v.kind != kindObject {
		return nil, invalidf(path, "%s must be a JSON object", path)
	}
	return v, nil
}
