// SPDX-License-Identifier: MIT

package query

// MatchJSON reports whether doc, the JSON text of one twin, satisfies the
// condition. It reads the text directly, as Execute does, so a job can
// test every twin of a large registry without decoding any of them.
func (c *Condition) MatchJSON(doc []byte) bool {
	if err := checkObject(doc, 0); err != nil {
		return false
	}
	ctx := newEvalCtx(c.nslots)
	ctx.resetRaw(doc)
	return c.where.eval(ctx).truthy()
}
