// SPDX-License-Identifier: MIT

package query

import "strconv"

// Step is one element of a property path: a member name, or an array index
// when IsIndex is set.
type Step struct {
	Name    string // member name (when !IsIndex)
	Index   int    // array index (when IsIndex)
	IsIndex bool   // the step selects an array element
}

// Path is a property path such as tags.site.building, one Step per member.
type Path []Step

// String renders the path in query syntax, e.g. properties.reported.arr[0].
func (p Path) String() string {
	var b []byte
	for i, s := range p {
		if s.IsIndex {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.Index), 10)
			b = append(b, ']')
			continue
		}
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, s.Name...)
	}
	return string(b)
}

func (p Path) equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Document is what a query is evaluated against: one twin (or job record).
// Lookup returns the value at path and false when the path does not exist.
// Member names match exactly; the parser has already mapped the twin's own
// field names to their canonical spelling.
type Document interface {
	Lookup(path Path) (Value, bool)
}

// MapDocument is a Document over a decoded JSON object, as produced by
// encoding/json (preferably with UseNumber, so numbers keep their text).
type MapDocument map[string]any

// Lookup walks the decoded tree.
func (d MapDocument) Lookup(path Path) (Value, bool) {
	var cur any = map[string]any(d)
	for _, s := range path {
		switch node := cur.(type) {
		case map[string]any:
			if s.IsIndex {
				return Value{}, false
			}
			next, ok := node[s.Name]
			if !ok {
				return Value{}, false
			}
			cur = next
		case []any:
			if !s.IsIndex || s.Index < 0 || s.Index >= len(node) {
				return Value{}, false
			}
			cur = node[s.Index]
		default:
			return Value{}, false
		}
	}
	v := ValueOf(cur)
	return v, v.defined()
}
