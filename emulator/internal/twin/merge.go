// SPDX-License-Identifier: MIT

package twin

// merge applies patch to the object target in place, the way §5.4 and §5.5
// describe (and RFC 7386 defines): members set to null are deleted, objects
// merge recursively, any other value replaces what was there, untouched
// members stay. patch is consumed: its subtrees move into target.
//
// It reports whether target changed. Writing a value equal to the current
// one counts as a change (the hub still bumps and notifies, §5.3); deleting
// an absent member does not. Every node on the path of a change, target
// included, gets st as its metadata, so $metadata shows when each level
// last changed, deletions included.
func merge(target, patch *node, st stamp) bool {
	changed := false
	for _, k := range patch.keys {
		p := patch.kids[k]
		cur, exists := target.kids[k]
		switch {
		case p.kind == kindNull:
			if target.remove(k) {
				changed = true
			}
		case p.kind == kindObject && exists && cur.kind == kindObject:
			if merge(cur, p, st) {
				changed = true
			}
		default:
			p.stampTree(st)
			target.set(k, p)
			changed = true
		}
	}
	if changed {
		target.updated, target.version = st.at, st.version
	}
	return changed
}

// removedKeys lists the members of old that are absent from new, in old's
// order.
func removedKeys(old, new *node) []string {
	var out []string
	for _, k := range old.keys {
		if _, ok := new.kids[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
