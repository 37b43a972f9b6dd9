// SPDX-License-Identifier: MIT

package twin

import (
	"time"
	"unicode"
	"unicode/utf8"
)

// kind is the JSON type of a node.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one JSON value of a twin section. Objects keep their members in
// first-insertion order, because people read twins and expect their own
// order back. Numbers keep their literal text so that no value is rounded.
//
// updated and version are the node's $metadata ($lastUpdated and
// $lastUpdatedVersion). They are meaningful for object members and section
// roots of desired and reported; array elements carry none. version 0 means
// "not recorded" and is not emitted (reported metadata, and a new twin's
// desired root).
type node struct {
	kind  kind
	text  string // string value, or number literal
	truth bool   // bool value

	elems []*node          // array elements
	keys  []string         // object member names, in order
	kids  map[string]*node // object members

	updated time.Time
	version int64
}

func newObject() *node {
	return &node{kind: kindObject, kids: map[string]*node{}}
}

// set stores v under k, keeping k's position when it already exists.
func (n *node) set(k string, v *node) {
	if _, ok := n.kids[k]; !ok {
		n.keys = append(n.keys, k)
	}
	n.kids[k] = v
}

// remove deletes member k; it reports whether k existed.
func (n *node) remove(k string) bool {
	if _, ok := n.kids[k]; !ok {
		return false
	}
	delete(n.kids, k)
	for i, key := range n.keys {
		if key == k {
			n.keys = append(n.keys[:i], n.keys[i+1:]...)
			break
		}
	}
	return true
}

// clone returns a deep copy of n, metadata included.
func (n *node) clone() *node {
	c := *n
	if n.elems != nil {
		c.elems = make([]*node, len(n.elems))
		for i, e := range n.elems {
			c.elems[i] = e.clone()
		}
	}
	if n.kind == kindObject {
		c.keys = append([]string(nil), n.keys...)
		c.kids = make(map[string]*node, len(n.kids))
		for k, v := range n.kids {
			c.kids[k] = v.clone()
		}
	}
	return &c
}

// stampTree sets the metadata of n and of every object member below it,
// dropping null members on the way: a new subtree from a patch or a
// replacement holds no nulls once stored (null means "delete" there).
func (n *node) stampTree(st stamp) {
	n.updated, n.version = st.at, st.version
	switch n.kind {
	case kindObject:
		keys := n.keys[:0]
		for _, k := range n.keys {
			v := n.kids[k]
			if v.kind == kindNull {
				delete(n.kids, k)
				continue
			}
			keys = append(keys, k)
			v.stampTree(st)
		}
		n.keys = keys
	case kindArray:
		// Elements have no metadata of their own and cannot be null
		// (validated), so there is nothing to do below an array.
	}
}

// stamp is the metadata a write puts on every node it touches.
type stamp struct {
	at      time.Time
	version int64 // desired $version of the write; 0 for reported and tags
}

// Section sizes follow the quotas page: keys and strings count their UTF-8
// bytes without control characters, numbers 8 bytes, booleans 4, containers
// the sum of their contents. Null members are about to be deleted and count
// nothing.
const (
	numberSize = 8
	boolSize   = 4
)

// size returns the quota size of n.
func (n *node) size() int {
	switch n.kind {
	case kindBool:
		return boolSize
	case kindNumber:
		return numberSize
	case kindString:
		return textSize(n.text)
	case kindArray:
		s := 0
		for _, e := range n.elems {
			s += e.size()
		}
		return s
	case kindObject:
		s := 0
		for _, k := range n.keys {
			if v := n.kids[k]; v.kind != kindNull {
				s += textSize(k) + v.size()
			}
		}
		return s
	}
	return 0
}

// textSize counts the UTF-8 bytes of s, leaving out C0 and C1 control
// characters as the quotas page prescribes.
func textSize(s string) int {
	n := 0
	for _, r := range s {
		if !unicode.IsControl(r) {
			n += utf8.RuneLen(r)
		}
	}
	return n
}

// mergedSize returns the size target would have after merging patch into
// it, without touching either. target may be nil or a non-object.
func mergedSize(target, patch *node) int {
	s := 0
	if target != nil && target.kind == kindObject {
		for _, k := range target.keys {
			if _, ok := patch.kids[k]; !ok {
				s += textSize(k) + target.kids[k].size()
			}
		}
	}
	for _, k := range patch.keys {
		p := patch.kids[k]
		switch {
		case p.kind == kindNull:
		case p.kind == kindObject && target != nil && target.kind == kindObject:
			s += textSize(k) + mergedSize(target.kids[k], p)
		default:
			s += textSize(k) + p.size()
		}
	}
	return s
}
