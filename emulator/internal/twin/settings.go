// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"strings"
	"time"
)

// DesiredSetting sets one section of the desired properties, as the
// content of an automatic device management configuration does
// ("properties.desired.chiller-water": {...}).
type DesiredSetting struct {
	Path  []string        // member names below properties.desired; empty for the whole section
	Value json.RawMessage // the section's new value; JSON null removes it
}

// SetDesired applies settings in order as one service write: each setting
// makes the member at its path equal to its value, members the value does
// not have included (they are removed), so a later setting overrides an
// earlier one wherever their paths overlap. The whole section's value must
// be an object. It returns the desired notification, nil when nothing
// changed (the settings already held, or only removed absent members). On
// error d is unchanged.
func (d *Doc) SetDesired(settings []DesiredSetting, now time.Time) (notify []byte, err error) {
	patch, err := d.settingsPatch(settings)
	if err != nil || len(patch.keys) == 0 {
		return nil, err
	}
	return d.serviceWrite(update{desired: patch}, false, now)
}

// CheckDesiredSettings reports whether settings could be applied to an
// empty twin: well-formed values under the twin's content rules and size
// limit. It is how configuration content is validated before it is stored.
func CheckDesiredSettings(settings []DesiredSetting) error {
	for _, s := range settings {
		v := validator{sec: &sections[sectionDesired]}
		for _, k := range s.Path {
			if err := v.key(k); err != nil {
				return err
			}
			v.path = append(v.path, k)
		}
	}
	_, err := New(time.Time{}).SetDesired(settings, time.Time{})
	return err
}

// settingsPatch builds the merge patch (§5.4) that takes the desired
// section to the state the settings describe: the settings are applied in
// turn to a copy of the section, and the patch is the difference between
// the section and that copy. Members that already hold their value are
// left out, so settings that change nothing make an empty patch.
func (d *Doc) settingsPatch(settings []DesiredSetting) (*node, error) {
	work := d.desired.clone()
	for _, s := range settings {
		where := strings.Join(append([]string{"properties", "desired"}, s.Path...), ".")
		v, err := parse(s.Value)
		if err != nil {
			return nil, invalidf(where, "%s: malformed JSON value: %v", where, err)
		}
		var p *node
		if len(s.Path) == 0 {
			if v.kind != kindObject {
				return nil, invalidf(where, "%s: the value of the whole desired section must be a JSON object", where)
			}
			p = replacement(work, v)
		} else {
			if cur := lookup(work, s.Path); cur != nil {
				v = replacement(cur, v)
			}
			p = newObject()
			n := p
			for _, k := range s.Path[:len(s.Path)-1] {
				next := newObject()
				n.set(k, next)
				n = next
			}
			n.set(s.Path[len(s.Path)-1], v)
		}
		merge(work, p, stamp{})
	}
	return diff(d.desired, work), nil
}

// lookup returns the member at path below n, or nil.
func lookup(n *node, path []string) *node {
	for _, k := range path {
		if n == nil || n.kind != kindObject {
			return nil
		}
		n = n.kids[k]
	}
	return n
}

// replacement returns v with a null for every member cur has and v lacks,
// at every level where both are objects: merged into cur, it leaves cur
// equal to v.
func replacement(cur, v *node) *node {
	if cur.kind != kindObject || v.kind != kindObject {
		return v
	}
	out := v.clone()
	for _, k := range cur.keys {
		nv, ok := out.kids[k]
		switch {
		case !ok:
			out.set(k, &node{kind: kindNull})
		case nv.kind == kindObject:
			out.kids[k] = replacement(cur.kids[k], nv)
		}
	}
	return out
}

// diff returns the merge patch that turns the object old into the object
// new: new's members that differ (objects compared member by member), and
// null for old's members that new lacks.
func diff(old, new *node) *node {
	p := newObject()
	for _, k := range new.keys {
		nv := new.kids[k]
		ov, ok := old.kids[k]
		switch {
		case ok && ov.kind == kindObject && nv.kind == kindObject:
			if sub := diff(ov, nv); len(sub.keys) > 0 {
				p.set(k, sub)
			}
		case ok && string(appendValue(nil, ov)) == string(appendValue(nil, nv)):
		default:
			p.set(k, nv.clone())
		}
	}
	for _, k := range old.keys {
		if _, ok := new.kids[k]; !ok {
			p.set(k, &node{kind: kindNull})
		}
	}
	return p
}
