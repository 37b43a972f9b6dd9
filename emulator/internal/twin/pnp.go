// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"strconv"
	"strings"
)

// IoT Plug and Play digital twins are a view of the device twin under the
// PnP conventions (learn.microsoft.com/azure/iot/concepts-digital-twin,
// concepts-convention, howto-manage-digital-twin):
//
//   - a component is a top-level desired or reported object marked with
//     "__t": "c"; everything else at the top level is a property of the
//     default component;
//   - a writable property is reported as {"value": v, "ac": code, "av":
//     version, "ad": description}, its desired value set by the service;
//   - the digital twin shows each property's reported value, and in the
//     $metadata of its component the desired value and version, the
//     acknowledgement and when the device last reported it.

// componentMarker is the member that marks a component in a device twin.
const (
	componentMarker      = "__t"
	componentMarkerValue = "c"
)

// isComponent reports whether n is an object carrying the component marker.
func isComponent(n *node) bool {
	if n == nil || n.kind != kindObject {
		return false
	}
	m := n.kids[componentMarker]
	return m != nil && m.kind == kindString && m.text == componentMarkerValue
}

// DigitalTwin renders d as the digital twin of device dtID: "$dtId", the
// default component's properties, each component as an object with its
// properties and "$metadata", then the root "$metadata" with "$model" (when
// modelID is not empty) and the default component's property metadata.
func (d *Doc) DigitalTwin(dtID, modelID string) []byte {
	b := append([]byte(nil), `{"$dtId":`...)
	b = appendString(b, dtID)

	// Components and properties in the order the device reported them,
	// then those only the service has set.
	var comps, props []string
	seen := map[string]bool{}
	for _, sec := range []*node{d.reported, d.desired} {
		for _, k := range sec.keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			if isComponent(d.reported.kids[k]) || isComponent(d.desired.kids[k]) {
				comps = append(comps, k)
			} else {
				props = append(props, k)
			}
		}
	}
	for _, k := range props {
		if v, ok := reportedValue(d.reported.kids[k]); ok {
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, v)
		}
	}
	for _, c := range comps {
		b = append(b, ',')
		b = appendString(b, c)
		b = append(b, ':')
		b = d.appendComponent(b, objectOrNil(d.reported.kids[c]), objectOrNil(d.desired.kids[c]))
	}
	b = append(b, `,"$metadata":{`...)
	first := true
	if modelID != "" {
		b = append(b, `"$model":`...)
		b = appendString(b, modelID)
		first = false
	}
	for _, k := range props {
		b = d.appendPropertyMeta(b, k, d.reported.kids[k], d.desired.kids[k], &first)
	}
	return append(b, "}}"...)
}

func objectOrNil(n *node) *node {
	if n == nil || n.kind != kindObject {
		return nil
	}
	return n
}

// appendComponent renders one component: its reported property values,
// then "$metadata" with each property's metadata.
func (d *Doc) appendComponent(b []byte, rep, des *node) []byte {
	var names []string
	seen := map[string]bool{componentMarker: true}
	for _, sec := range []*node{rep, des} {
		if sec == nil {
			continue
		}
		for _, k := range sec.keys {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	b = append(b, '{')
	for _, k := range names {
		if rep == nil {
			break
		}
		if v, ok := reportedValue(rep.kids[k]); ok {
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, v)
			b = append(b, ',')
		}
	}
	b = append(b, `"$metadata":{`...)
	first := true
	for _, k := range names {
		var r, w *node
		if rep != nil {
			r = rep.kids[k]
		}
		if des != nil {
			w = des.kids[k]
		}
		b = d.appendPropertyMeta(b, k, r, w, &first)
	}
	return append(b, "}}"...)
}

// reportedValue is the value a digital twin shows for a reported property:
// the "value" of a writable property's acknowledgement, else the property
// itself. ok is false when the device has not reported it.
func reportedValue(rep *node) (*node, bool) {
	if rep == nil {
		return nil, false
	}
	if isAck(rep) {
		return rep.kids["value"], true
	}
	return rep, true
}

// isAck reports whether a reported value has the shape of a writable
// property's acknowledgement: an object with "value" and an ack code or
// version.
func isAck(n *node) bool {
	if n == nil || n.kind != kindObject || n.kids["value"] == nil {
		return false
	}
	return n.kids["ac"] != nil || n.kids["av"] != nil
}

// appendPropertyMeta appends `"name":{...}` to a $metadata object under
// construction: desiredValue and desiredVersion when the service set the
// property, ackVersion, ackCode and ackDescription when the device
// acknowledged it, and lastUpdateTime when the device reported it.
func (d *Doc) appendPropertyMeta(b []byte, name string, rep, des *node, first *bool) []byte {
	if rep == nil && des == nil {
		return b
	}
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = appendString(b, name)
	b = append(b, ":{"...)
	var members [][]byte
	if des != nil {
		members = append(members, appendValue([]byte(`"desiredValue":`), des))
		v := des.version
		if v == 0 {
			v = d.desiredVersion
		}
		members = append(members, strconv.AppendInt([]byte(`"desiredVersion":`), v, 10))
	}
	if isAck(rep) {
		if av := rep.kids["av"]; av != nil {
			members = append(members, appendValue([]byte(`"ackVersion":`), av))
		}
		if ac := rep.kids["ac"]; ac != nil {
			members = append(members, appendValue([]byte(`"ackCode":`), ac))
		}
		if ad := rep.kids["ad"]; ad != nil {
			members = append(members, appendValue([]byte(`"ackDescription":`), ad))
		}
	}
	if rep != nil {
		t := append([]byte(`"lastUpdateTime":"`), rep.updated.UTC().Format(timeLayout)...)
		members = append(members, append(t, '"'))
	}
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	return append(b, '}')
}

// Digital twin updates (Update Digital Twin, howto-manage-digital-twin).
const (
	// maxDTDLName is the longest component or property name (DTDL v2).
	maxDTDLName = 64
	// maxDTDLDepth is the deepest nesting of a complex property value.
	maxDTDLDepth = 5
)

// DigitalTwinPatch translates an Update Digital Twin body, a JSON Patch
// (RFC 6902) of add, replace and remove operations on writable properties,
// into the desired-properties patch the hub applies to the device twin:
//
//   - /prop: the default component's property; add and replace set
//     desired.prop, remove sets it to null;
//   - /comp with a value holding an empty "$metadata" object: the
//     component; add and replace set each given property under desired.comp
//     (with the "__t" marker) and clear the component's other desired
//     properties; remove clears the component;
//   - /comp/prop[/field...]: a property of a component (or a field of a
//     complex property); the component gets its marker;
//   - a two-segment path whose first segment is a property the twin already
//     has (not a component) addresses a field of that property.
//
// Names must be DTDL names (a letter, then letters, digits and '_', not
// ending in '_', at most 64 characters); values may not contain arrays and
// nest at most five levels. Any other operation, a malformed path or
// value fails with an error matching ErrInvalid, and nothing is returned.
// The operations are applied in order; the result is one patch, so the
// whole update is one desired version.
func (d *Doc) DigitalTwinPatch(body []byte) ([]byte, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  *string         `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &ops); err != nil {
		return nil, invalidf("", "the digital twin update must be a JSON Patch array of operations: %v", err)
	}
	out := newObject()
	for i, op := range ops {
		if err := d.applyOp(out, i, op.Op, op.Path, op.Value); err != nil {
			return nil, err
		}
	}
	return appendValue(nil, out), nil
}

// applyOp merges the desired patch of operation i into out.
func (d *Doc) applyOp(out *node, i int, op string, path *string, raw json.RawMessage) error {
	switch op {
	case "add", "replace", "remove":
	case "":
		return invalidf("", "operation %d has no \"op\"; use add, replace or remove", i)
	default:
		return invalidf("", "operation %d: op %q is not supported on a digital twin; use add, replace or remove", i, op)
	}
	if path == nil {
		return invalidf("", "operation %d (%s) has no \"path\"", i, op)
	}
	segs, err := splitPointer(*path)
	if err != nil {
		return invalidf(*path, "operation %d (%s): %v", i, op, err)
	}
	for _, s := range segs {
		if err := checkDTDLName(s); err != nil {
			return invalidf(*path, "operation %d (%s) path %s: %v", i, op, *path, err)
		}
	}
	var value *node
	if op != "remove" {
		if len(raw) == 0 {
			return invalidf(*path, "operation %d (%s) on %s has no \"value\"", i, op, *path)
		}
		if value, err = parse(raw); err != nil {
			return invalidf(*path, "operation %d (%s) on %s: malformed value: %v", i, op, *path, err)
		}
	}

	name := segs[0]
	cur := d.desired.kids[name]
	known := cur != nil || d.reported.kids[name] != nil
	component := isComponent(cur) || isComponent(d.reported.kids[name])
	if len(segs) == 1 {
		isCompValue := value != nil && value.kind == kindObject && value.kids["$metadata"] != nil
		if isCompValue {
			return d.componentOp(out, i, op, *path, name, value)
		}
		if value != nil {
			if err := checkDTDLValue(value, 1); err != nil {
				return invalidf(*path, "operation %d (%s) on %s: %v", i, op, *path, err)
			}
		} else {
			value = &node{kind: kindNull}
		}
		mergeOp(out, []string{name}, value)
		return nil
	}
	if value != nil {
		if err := checkDTDLValue(value, len(segs)-1); err != nil {
			return invalidf(*path, "operation %d (%s) on %s: %v", i, op, *path, err)
		}
	} else {
		value = &node{kind: kindNull}
	}
	if op != "remove" && (component || !known) {
		// A component, existing or new: it carries the marker.
		mergeOp(out, []string{name, componentMarker}, &node{kind: kindString, text: componentMarkerValue})
	}
	mergeOp(out, segs, value)
	return nil
}

// componentOp is add, replace (or remove) of a whole component.
func (d *Doc) componentOp(out *node, i int, op, path, name string, value *node) error {
	meta := value.kids["$metadata"]
	if meta.kind != kindObject || len(meta.keys) != 0 {
		return invalidf(path, "operation %d (%s) on %s: a component's \"$metadata\" must be an empty object", i, op, path)
	}
	c := newObject()
	c.set(componentMarker, &node{kind: kindString, text: componentMarkerValue})
	for _, k := range value.keys {
		if k == "$metadata" {
			continue
		}
		if err := checkDTDLName(k); err != nil {
			return invalidf(path, "operation %d (%s) on %s: property %v", i, op, path, err)
		}
		v := value.kids[k]
		if err := checkDTDLValue(v, 1); err != nil {
			return invalidf(path, "operation %d (%s) on %s.%s: %v", i, op, path, k, err)
		}
		c.set(k, v)
	}
	// Writable properties the new value leaves out are cleared: those the
	// twin has and those earlier operations of this update set.
	clear := func(sec *node) {
		if sec = objectOrNil(sec); sec == nil {
			return
		}
		for _, k := range sec.keys {
			if _, ok := c.kids[k]; !ok && sec.kids[k].kind != kindNull {
				c.set(k, &node{kind: kindNull})
			}
		}
	}
	clear(d.desired.kids[name])
	clear(out.kids[name])
	out.set(name, c)
	return nil
}

// mergeOp sets value at path in the patch under construction, creating
// objects on the way; a later operation overrides an earlier one.
func mergeOp(out *node, path []string, value *node) {
	n := out
	for _, k := range path[:len(path)-1] {
		next := n.kids[k]
		if next == nil || next.kind != kindObject {
			next = newObject()
			n.set(k, next)
		}
		n = next
	}
	n.set(path[len(path)-1], value)
}

// splitPointer splits a JSON Pointer (RFC 6901) into its unescaped tokens.
func splitPointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return nil, errPointer(p)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "" {
			return nil, errPointer(p)
		}
		s = strings.ReplaceAll(s, "~1", "/")
		segs[i] = strings.ReplaceAll(s, "~0", "~")
	}
	return segs, nil
}

type pointerError string

func (e pointerError) Error() string {
	return "path " + strconv.Quote(string(e)) + " is not a JSON Pointer to a property (/property, /component or /component/property)"
}

func errPointer(p string) error { return pointerError(p) }

// checkDTDLName applies the DTDL v2 name rule the hub enforces on digital
// twin updates.
func checkDTDLName(s string) error {
	if s == "" || len(s) > maxDTDLName {
		return dtdlNameError(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9' || c == '_') && i > 0:
		default:
			return dtdlNameError(s)
		}
	}
	if s[len(s)-1] == '_' {
		return dtdlNameError(s)
	}
	return nil
}

type dtdlNameError string

func (e dtdlNameError) Error() string {
	return strconv.Quote(string(e)) + " is not a DTDL name (a letter, then up to 63 letters, digits or '_', not ending in '_')"
}

// checkDTDLValue checks a property value: no arrays, field names that are
// DTDL names, at most maxDTDLDepth levels of objects. depth is the level
// of v itself.
func checkDTDLValue(v *node, depth int) error {
	switch v.kind {
	case kindArray:
		return dtdlValueError("array values are not supported in digital twin properties")
	case kindObject:
		if depth > maxDTDLDepth {
			return dtdlValueError("the value nests deeper than " + strconv.Itoa(maxDTDLDepth) + " levels")
		}
		for _, k := range v.keys {
			if err := checkDTDLName(k); err != nil {
				return err
			}
			if err := checkDTDLValue(v.kids[k], depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

type dtdlValueError string

func (e dtdlValueError) Error() string { return string(e) }
