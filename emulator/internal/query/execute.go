// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
)

// Execute runs the query over docs, the JSON text of every document in the
// collection, and returns the result items in a stable order:
//
//   - SELECT *: the matching documents, byte for byte, in input order;
//   - projections: one object per matching document, in input order, keys
//     in projection order, undefined values left out;
//   - aggregates and GROUP BY: one object per group, groups in order of
//     first appearance in the input; aggregates without GROUP BY give
//     exactly one object, even over no documents.
//
// TOP n keeps the first n items. The results never alias docs, so the
// caller may reuse or unmap the input buffers afterwards. Execute fails only
// if a document is not a JSON object.
func (q *Query) Execute(docs iter.Seq[[]byte]) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	if q.top == 0 {
		return out, nil
	}
	c := newEvalCtx(q.nslots)
	if q.grouped {
		return q.executeGrouped(docs, c)
	}
	n := 0
	var err error
	for d := range docs {
		if err = checkObject(d, n); err != nil {
			break
		}
		n++
		c.resetRaw(d)
		c.warm(d)
		if q.where != nil && !q.where.eval(c).truthy() {
			continue
		}
		if q.star {
			out = append(out, bytes.Clone(d))
		} else {
			out = append(out, q.project(c))
		}
		if q.top > 0 && len(out) >= q.top {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Run evaluates the query over documents that answer lookups themselves
// (a store's records, say) rather than over JSON text. For SELECT *, it
// renders nothing: it calls selected for each matching document, in input
// order up to TOP, while that document is current, and returns no items;
// the caller renders the rows it returns. Other queries return their items
// as Execute does. The documents and the values they return may be reused
// or invalid once the iteration moves on: Run copies what it keeps.
func (q *Query) Run(docs iter.Seq[Document], selected func()) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	if q.top == 0 {
		return out, nil
	}
	c := newEvalCtx(q.nslots)
	if q.grouped {
		return q.executeGroupedDocs(docs, c)
	}
	n := 0
	for d := range docs {
		c.reset(d)
		if q.where != nil && !q.where.eval(c).truthy() {
			continue
		}
		n++
		if q.star {
			selected()
		} else {
			out = append(out, q.project(c))
		}
		if q.top > 0 && n >= q.top {
			break
		}
	}
	return out, nil
}

func checkObject(d []byte, n int) error {
	if i := skipWS(d, 0); i >= len(d) || d[i] != '{' {
		return fmt.Errorf("query: document %d is not a JSON object", n)
	}
	return nil
}

func (q *Query) project(c *evalCtx) json.RawMessage {
	buf := []byte{'{'}
	for _, it := range q.items {
		buf = appendMember(buf, it.name, it.path.eval(c))
	}
	return append(buf, '}')
}

// appendMember appends "name":value to an object under construction,
// leaving undefined values out as JSON cannot hold them.
func appendMember(buf []byte, name string, v Value) []byte {
	if !v.defined() {
		return buf
	}
	if len(buf) > 1 {
		buf = append(buf, ',')
	}
	buf = appendQuoted(buf, []byte(name))
	buf = append(buf, ':')
	return appendJSON(buf, v)
}

// group accumulates one GROUP BY group.
type group struct {
	keys  []Value // the group's values, one per GROUP BY path
	count int
	aggs  []aggState // one per projection item
}

// aggState is the running state of SUM, AVG, MIN or MAX. SUM and AVG add up
// the numbers and ignore other values (SUM of no numbers is 0, AVG of none
// undefined). MIN and MAX compare booleans, numbers and strings, ordering
// across types as bool < number < string, and ignore null, objects, arrays
// and undefined.
type aggState struct {
	sum  float64
	n    int
	best Value
}

func (s *aggState) add(agg aggKind, v Value) {
	switch agg {
	case aggSum, aggAvg:
		if v.kind == kNumber {
			s.sum += v.n
			s.n++
		}
	case aggMin, aggMax:
		if v.kind < kBool || v.kind > kString {
			return
		}
		if s.best.defined() {
			c := int(v.kind) - int(s.best.kind)
			if c == 0 {
				c, _ = compare(v, s.best)
			}
			if (agg == aggMin && c >= 0) || (agg == aggMax && c <= 0) {
				return
			}
		}
		s.best = v.clone()
	}
}

func (s *aggState) result(agg aggKind) Value {
	switch agg {
	case aggSum:
		return numOrUndef(s.sum)
	case aggAvg:
		if s.n == 0 {
			return Value{}
		}
		return numOrUndef(s.sum / float64(s.n))
	}
	return s.best
}

func (q *Query) executeGrouped(docs iter.Seq[[]byte], c *evalCtx) ([]json.RawMessage, error) {
	g := q.newGrouper()
	n := 0
	for d := range docs {
		if err := checkObject(d, n); err != nil {
			return nil, err
		}
		n++
		c.resetRaw(d)
		c.warm(d)
		g.add(c)
	}
	return g.result(), nil
}

func (q *Query) executeGroupedDocs(docs iter.Seq[Document], c *evalCtx) ([]json.RawMessage, error) {
	g := q.newGrouper()
	for d := range docs {
		c.reset(d)
		g.add(c)
	}
	return g.result(), nil
}

// grouper accumulates the groups of an aggregate or GROUP BY query.
type grouper struct {
	q      *Query
	groups map[string]*group
	order  []*group
	key    []byte
}

func (q *Query) newGrouper() *grouper { return &grouper{q: q, groups: map[string]*group{}} }

// add adds the current document of c, if it satisfies the WHERE clause.
func (gr *grouper) add(c *evalCtx) {
	q := gr.q
	if q.where != nil && !q.where.eval(c).truthy() {
		return
	}
	key := gr.key[:0]
	for _, pe := range q.groupBy {
		key = appendKey(key, pe.eval(c))
		key = append(key, 0)
	}
	gr.key = key
	g := gr.groups[string(key)]
	if g == nil {
		g = &group{aggs: make([]aggState, len(q.items))}
		for _, pe := range q.groupBy {
			g.keys = append(g.keys, pe.eval(c).clone())
		}
		gr.groups[string(key)] = g
		gr.order = append(gr.order, g)
	}
	g.count++
	for i, it := range q.items {
		if it.agg != aggNone && it.agg != aggCount {
			g.aggs[i].add(it.agg, it.path.eval(c))
		}
	}
}

// result renders one item per group.
func (gr *grouper) result() []json.RawMessage {
	q, order := gr.q, gr.order
	if len(q.groupBy) == 0 && len(order) == 0 {
		order = append(order, &group{aggs: make([]aggState, len(q.items))})
	}
	out := []json.RawMessage{}
	for _, g := range order {
		if q.top >= 0 && len(out) >= q.top {
			break
		}
		buf := []byte{'{'}
		for i, it := range q.items {
			var v Value
			switch it.agg {
			case aggNone:
				v = g.keys[it.group]
			case aggCount:
				v = numV(float64(g.count))
			default:
				v = g.aggs[i].result(it.agg)
			}
			buf = appendMember(buf, it.name, v)
		}
		out = append(out, append(buf, '}'))
	}
	return out
}
