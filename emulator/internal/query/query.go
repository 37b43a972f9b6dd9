// SPDX-License-Identifier: MIT

package query

import "strconv"

// Query is a parsed twin query. It is immutable and safe for concurrent use.
type Query struct {
	text       string
	collection string
	top        int // -1: no TOP
	star       bool
	items      []item
	where      expr // nil: no WHERE
	groupBy    []*pathExpr
	grouped    bool // aggregates or GROUP BY: one row per group
	nslots     int
}

// Parse parses a query of the form
//
//	SELECT [TOP n] * | item [AS alias] {, item [AS alias]}
//	FROM devices | devices.modules | devices.jobs
//	[WHERE condition] [GROUP BY path {, path}]
//
// and returns an *Error when the text is malformed, too long, or uses a
// construct the hub does not support.
func Parse(q string) (*Query, error) {
	if err := checkLength(q); err != nil {
		return nil, err
	}
	toks, lerr := lex(q)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{toks: toks}
	query, err := p.parseQuery(q)
	if err != nil {
		return nil, err
	}
	return query, nil
}

// String returns the query text as given to Parse.
func (q *Query) String() string { return q.text }

// Collection returns the collection the query reads: CollectionDevices,
// CollectionModules or CollectionJobs.
func (q *Query) Collection() string { return q.collection }

// ItemType returns the x-ms-item-type of the results (§6.6): "Twin" for
// SELECT * over twins, "DeviceJob" for devices.jobs, "Raw" for projections
// and aggregates.
func (q *Query) ItemType() string {
	switch {
	case q.collection == CollectionJobs:
		return "DeviceJob"
	case q.star:
		return "Twin"
	}
	return "Raw"
}

// Match reports whether doc satisfies the WHERE clause (true when there is
// none). Only a boolean true satisfies it.
func (q *Query) Match(doc Document) bool {
	if q.where == nil {
		return true
	}
	c := newEvalCtx(q.nslots)
	c.reset(doc)
	return q.where.eval(c).truthy()
}

func (q *Query) check(groupTok token) *Error {
	if q.collection == CollectionJobs {
		if !q.star {
			return errAt(q.items[0].tok, "devices.jobs supports only SELECT *")
		}
		if len(q.groupBy) > 0 {
			return errAt(groupTok, "GROUP BY is not supported on devices.jobs")
		}
	}
	if q.star && len(q.groupBy) > 0 {
		return errAt(groupTok, "GROUP BY needs a projection list, not *")
	}
	q.grouped = len(q.groupBy) > 0
	for _, it := range q.items {
		if it.agg != aggNone {
			q.grouped = true
		}
	}
	unnamed := 0
	seen := map[string]bool{}
	for i := range q.items {
		it := &q.items[i]
		if it.agg == aggNone && q.grouped {
			for g, pe := range q.groupBy {
				if pe.path.equal(it.path.path) {
					it.group = g
					break
				}
			}
			if it.group < 0 {
				return errAt(it.tok, "%s must appear in GROUP BY when aggregates or GROUP BY are used", it.path.path)
			}
		}
		if !it.alias {
			if it.agg != aggNone {
				// Un-aliased aggregates are named $1, $2, ... (§11 item 11
				// of the protocol notes; the Cosmos DB convention).
				unnamed++
				it.name = "$" + strconv.Itoa(unnamed)
			} else {
				it.name = lastName(it.path.path)
			}
		}
		if seen[it.name] {
			return errAt(it.tok, "duplicate output name %q; use AS to rename", it.name)
		}
		seen[it.name] = true
	}
	return nil
}

// lastName is the output key of an un-aliased path: its last member name.
func lastName(p Path) string {
	for i := len(p) - 1; i >= 0; i-- {
		if !p[i].IsIndex {
			return p[i].Name
		}
	}
	return ""
}

// Condition is a bare WHERE condition, as jobs carry in queryCondition. It
// is evaluated against device twins and is safe for concurrent use.
type Condition struct {
	text   string
	where  expr
	nslots int
}

// ParseCondition parses a condition without the WHERE keyword, e.g.
// "tags.site.building = 'B7'".
func ParseCondition(s string) (*Condition, error) {
	if err := checkLength(s); err != nil {
		return nil, err
	}
	toks, lerr := lex(s)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{toks: toks}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t, "expected an operator or end of condition")
	}
	n := p.resolvePaths(CollectionDevices)
	return &Condition{text: s, where: e, nslots: n}, nil
}

// String returns the condition text as given to ParseCondition.
func (c *Condition) String() string { return c.text }

// Match reports whether doc satisfies the condition.
func (c *Condition) Match(doc Document) bool {
	ctx := newEvalCtx(c.nslots)
	ctx.reset(doc)
	return c.where.eval(ctx).truthy()
}
