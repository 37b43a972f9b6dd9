// SPDX-License-Identifier: MIT

package twin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Content limits of §5.6 and §10. edgeHub's ReportedPropertiesValidator
// carries the same numbers with a note that they were taken from IoT Hub.
const (
	// MaxKeyBytes is the longest property name, in UTF-8 bytes.
	MaxKeyBytes = 1024
	// MaxStringBytes is the longest string value, in UTF-8 bytes.
	MaxStringBytes = 4096
	// MaxDepth is the deepest nesting of objects and arrays in a section.
	MaxDepth = 10
	// MaxInt is the largest integer value accepted (2^52-1).
	MaxInt = 1<<52 - 1
	// MinInt is the smallest integer value accepted (-2^52).
	MinInt = -(1 << 52)
	// MaxTagsSize is the size quota of tags.
	MaxTagsSize = 8 * 1024
	// MaxDesiredSize is the size quota of properties.desired.
	MaxDesiredSize = 32 * 1024
	// MaxReportedSize is the size quota of properties.reported.
	MaxReportedSize = 32 * 1024
)

// maxPathSegment is the longest member name quoted in an error message.
const maxPathSegment = 64

// sectionID names one of a twin's three writable sections.
type sectionID int

const (
	sectionTags sectionID = iota
	sectionDesired
	sectionReported
)

// sectionInfo is what the rules need to know about a section.
type sectionInfo struct {
	path  string // path prefix in error messages
	title string // the hub's name for it in size errors
	limit int    // size quota
}

var sections = [...]sectionInfo{
	sectionTags:     {path: "tags", title: "Tags", limit: MaxTagsSize},
	sectionDesired:  {path: "properties.desired", title: "Properties.Desired", limit: MaxDesiredSize},
	sectionReported: {path: "properties.reported", title: "Properties.Reported", limit: MaxReportedSize},
}

// dropEcho removes the top-level "$metadata" and "$version" members of a
// service-written desired section. The C# RegistryManager serialises a
// TwinCollection's whole JObject (shared/src/TwinCollectionJsonConverter.cs),
// and Python's Twin model keeps the dict it was given, so a twin fetched,
// edited and sent back carries both; the hub must accept such a body.
func dropEcho(n *node) {
	n.remove("$metadata")
	n.remove("$version")
}

// checkBody applies every content rule of §5.6 to a section body (a patch
// or a replacement). Nulls are allowed as object members outside arrays.
func checkBody(n *node, sec sectionID) error {
	v := validator{sec: &sections[sec]}
	if n.kind != kindObject {
		return invalidf("", "the %s update must be a JSON object", v.sec.path)
	}
	return v.object(n, 0, false)
}

// validator walks a body, tracking the path for error messages.
type validator struct {
	sec  *sectionInfo
	path []string // member names, or "[i]" for array elements
}

// where renders the current path, shortening very long names.
func (v *validator) where() string {
	var b strings.Builder
	b.WriteString(v.sec.path)
	for _, s := range v.path {
		if !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(truncate(s, maxPathSegment))
	}
	return b.String()
}

func (v *validator) object(n *node, depth int, inArray bool) error {
	for _, k := range n.keys {
		if err := v.key(k); err != nil {
			return err
		}
		v.path = append(v.path, k)
		if err := v.value(n.kids[k], depth+1, inArray); err != nil {
			return err
		}
		v.path = v.path[:len(v.path)-1]
	}
	return nil
}

// value checks n found at the current path; depth counts the containers
// from the section root down to n, an array counting as one level like an
// object (edgeHub ReportedPropertiesValidator.ValidateToken).
func (v *validator) value(n *node, depth int, inArray bool) error {
	switch n.kind {
	case kindNull:
		if inArray {
			return invalidf(v.where(), "%s: a property of an object inside an array must not be null", v.where())
		}
	case kindString:
		if len(n.text) > MaxStringBytes {
			return invalidf(v.where(), "Property or Tag value should be maximum %d bytes. Error in Property/Tag %s (%d bytes)",
				MaxStringBytes, v.where(), len(n.text))
		}
	case kindNumber:
		return v.number(n.text)
	case kindObject:
		if depth > MaxDepth {
			return v.tooDeep()
		}
		return v.object(n, depth, inArray)
	case kindArray:
		if depth > MaxDepth {
			return v.tooDeep()
		}
		for i, e := range n.elems {
			v.path = append(v.path, "["+strconv.Itoa(i)+"]")
			if e.kind == kindNull {
				return invalidf(v.where(), "%s: arrays must not contain null", v.where())
			}
			if err := v.value(e, depth+1, true); err != nil {
				return err
			}
			v.path = v.path[:len(v.path)-1]
		}
	}
	return nil
}

func (v *validator) tooDeep() error {
	return invalidf(v.where(), "%s: nesting exceeds the maximum depth of %d levels", v.where(), MaxDepth)
}

// number checks a number literal. Literals without fraction or exponent
// are integers and must fit the hub's 53-bit range; others are doubles and
// must be finite.
func (v *validator) number(lit string) error {
	if strings.ContainsAny(lit, ".eE") {
		if f, _ := strconv.ParseFloat(lit, 64); math.IsInf(f, 0) {
			return invalidf(v.where(), "value of %s is out of range: %s does not fit a double", v.where(), truncate(lit, maxPathSegment))
		}
		return nil
	}
	if i, err := strconv.ParseInt(lit, 10, 64); err != nil || i > MaxInt || i < MinInt {
		return invalidf(v.where(), "value of %s is out of range: integers must be between %d and %d",
			v.where(), MinInt, MaxInt)
	}
	return nil
}

// key checks a member name found under the current path: UTF-8, at most
// 1 KB, none of '.', '$', '#', white space or control characters (§5.6;
// edgeHub reserves '#' too, as the hub's storage stands it in for '$').
// Empty names are refused as well: no path could address them.
func (v *validator) key(k string) error {
	if k == "" {
		return invalidf(v.where(), "empty property name in %s", v.where())
	}
	if len(k) > MaxKeyBytes {
		return invalidf(v.where(), "property name %q in %s is %d bytes long; the maximum is %d",
			truncate(k, maxPathSegment), v.where(), len(k), MaxKeyBytes)
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == '#' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return invalidf(v.where(), "invalid property name %q in %s: %q is not allowed (names must not contain '.', '$', '#', white space or control characters)",
				truncate(k, maxPathSegment), v.where(), r)
		}
	}
	return nil
}

// checkSize refuses a write that would take the section over its quota.
func checkSize(size int, sec sectionID) error {
	info := &sections[sec]
	if size <= info.limit {
		return nil
	}
	return &Error{
		Kind: ErrTooLarge,
		Path: info.path,
		Msg: fmt.Sprintf("'%s' size should be at most %d bytes; this update would make it %d bytes",
			info.title, info.limit, size),
	}
}
