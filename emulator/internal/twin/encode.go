// SPDX-License-Identifier: MIT

package twin

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/iothubemulator/iothub/emulator/internal/jsonstr"
)

// timeLayout is how the hub prints metadata times: UTC, always seven
// fractional digits ("2024-05-02T09:10:00.0000000Z", §5.1).
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// timeResolution is the precision of timeLayout. Stamps are truncated to it
// so that a stored twin reads back equal to the one in memory.
const timeResolution = 100 * time.Nanosecond

// appendValue appends n as compact JSON, without metadata.
func appendValue(b []byte, n *node) []byte {
	switch n.kind {
	case kindNull:
		return append(b, "null"...)
	case kindBool:
		return strconv.AppendBool(b, n.truth)
	case kindNumber:
		return append(b, n.text...)
	case kindString:
		return appendString(b, n.text)
	case kindArray:
		b = append(b, '[')
		for i, e := range n.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	}
	b = append(b, '{')
	b = appendMembers(b, n)
	return append(b, '}')
}

// appendMembers appends the members of object n, without braces.
func appendMembers(b []byte, n *node) []byte {
	for i, k := range n.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, n.kids[k])
	}
	return b
}

// appendMeta appends the $metadata object of n: its own stamp, then, for an
// object, the metadata of each member in member order.
func appendMeta(b []byte, n *node) []byte {
	b = append(b, `{"$lastUpdated":"`...)
	b = n.updated.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	if n.version != 0 {
		b = append(b, `,"$lastUpdatedVersion":`...)
		b = strconv.AppendInt(b, n.version, 10)
	}
	if n.kind == kindObject {
		for _, k := range n.keys {
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = appendMeta(b, n.kids[k])
		}
	}
	return append(b, '}')
}

// appendSection appends a desired or reported section: its members, then
// "$metadata" when withMeta is set, then "$version", the order the hub uses.
func appendSection(b []byte, n *node, version int64, withMeta bool) []byte {
	b = append(b, '{')
	b = appendMembers(b, n)
	if len(n.keys) > 0 {
		b = append(b, ',')
	}
	if withMeta {
		b = append(b, `"$metadata":`...)
		b = appendMeta(b, n)
		b = append(b, ',')
	}
	b = append(b, `"$version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}

// appendString appends s as a JSON string as the hub's serializer does
// (jsonstr.Append). Input strings are valid UTF-8: the decoder replaces
// invalid bytes.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s) }

// truncate shortens s to at most max bytes on a rune boundary for use in
// error messages, marking the cut with "...".
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
