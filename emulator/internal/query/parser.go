// SPDX-License-Identifier: MIT

package query

import (
	"math"
	"strings"
	"unicode/utf8"
)

const (
	// MaxQueryLen is the longest query text accepted, in characters
	// (query-twins docs: "Query expressions can have a maximum length of
	// 8192 characters").
	MaxQueryLen = 8192
	// maxDepth bounds nesting of parentheses, arrays, function calls, NOT
	// and unary signs, so that neither parsing nor evaluation can recurse
	// without limit.
	maxDepth = 64
	// maxTop is the largest TOP count accepted.
	maxTop = math.MaxInt32
)

// reserved words cannot start a path or name a function.
var reserved = map[string]bool{
	"SELECT": true, "TOP": true, "FROM": true, "WHERE": true, "GROUP": true,
	"BY": true, "AS": true, "AND": true, "OR": true, "NOT": true, "IN": true,
	"NIN": true, "TRUE": true, "FALSE": true, "NULL": true, "UNDEFINED": true,
}

type aggKind uint8

const (
	aggNone aggKind = iota
	aggCount
	aggSum
	aggAvg
	aggMin
	aggMax
)

var aggregates = map[string]aggKind{
	"COUNT": aggCount, "SUM": aggSum, "AVG": aggAvg, "MIN": aggMin, "MAX": aggMax,
}

// item is one element of the projection list.
type item struct {
	name  string    // output key
	alias bool      // name came from AS
	agg   aggKind   // aggNone for a plain path
	path  *pathExpr // the path, or the aggregate's argument (nil for COUNT)
	group int       // for a plain path in a grouped query: index in GROUP BY
	tok   token     // first token, for errors
}

type parser struct {
	toks  []token
	i     int
	depth int
	paths []*pathExpr
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func isKw(t token, kw string) bool {
	return t.kind == tIdent && len(t.text) == len(kw) && strings.EqualFold(t.text, kw)
}

func (p *parser) expectKw(kw string) *Error {
	t := p.next()
	if !isKw(t, kw) {
		return errAt(t, "expected %s", kw)
	}
	return nil
}

func (p *parser) enter(t token) *Error {
	p.depth++
	if p.depth > maxDepth {
		return errAt(t, "expression nested too deeply (limit %d)", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// checkLength refuses text over MaxQueryLen characters; the error points at
// the first character past the limit.
func checkLength(src string) *Error {
	if len(src) <= MaxQueryLen || utf8.RuneCountInString(src) <= MaxQueryLen {
		return nil
	}
	off := 0
	for n := 0; n < MaxQueryLen; n++ {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	_, size := utf8.DecodeRuneInString(src[off:])
	return &Error{Pos: off, Token: src[off : off+size], Msg: "query text is longer than 8192 characters"}
}

func (p *parser) parseQuery(src string) (*Query, *Error) {
	q := &Query{text: src, top: -1}
	if err := p.expectKw("SELECT"); err != nil {
		return nil, err
	}
	if err := p.parseProjection(q); err != nil {
		return nil, err
	}
	if err := p.expectKw("FROM"); err != nil {
		return nil, err
	}
	collTok, err := p.parseCollection()
	if err != nil {
		return nil, err
	}
	q.collection = collTok.text
	if isKw(p.peek(), "WHERE") {
		p.next()
		if q.where, err = p.parseExpr(); err != nil {
			return nil, err
		}
	}
	var groupTok token
	if isKw(p.peek(), "GROUP") {
		groupTok = p.next()
		if err := p.parseGroupBy(q); err != nil {
			return nil, err
		}
	}
	if t := p.peek(); t.kind != tEOF {
		switch {
		case len(q.groupBy) > 0:
			return nil, errAt(t, "expected ',' or end of query")
		case q.where != nil:
			return nil, errAt(t, "expected an operator, GROUP BY or end of query")
		}
		return nil, errAt(t, "expected WHERE, GROUP BY or end of query")
	}
	q.nslots = p.resolvePaths(q.collection)
	if err := q.check(groupTok); err != nil {
		return nil, err
	}
	return q, nil
}

// parseProjection reads [TOP n] and the projection list up to FROM.
func (p *parser) parseProjection(q *Query) *Error {
	if isKw(p.peek(), "TOP") {
		p.next()
		t := p.next()
		if t.kind != tNumber || t.num != math.Trunc(t.num) || t.num > maxTop {
			return errAt(t, "expected a non-negative integer after TOP")
		}
		q.top = int(t.num)
	}
	if p.peek().kind == tStar {
		p.next()
		q.star = true
		return nil
	}
	for {
		it, err := p.parseItem()
		if err != nil {
			return err
		}
		q.items = append(q.items, it)
		if p.peek().kind != tComma {
			return nil
		}
		p.next()
	}
}

// parseGroupBy reads BY and the list of grouping paths (GROUP is consumed).
func (p *parser) parseGroupBy(q *Query) *Error {
	if err := p.expectKw("BY"); err != nil {
		return err
	}
	for {
		t := p.next()
		if t.kind != tIdent || reserved[strings.ToUpper(t.text)] {
			return errAt(t, "expected a property path")
		}
		pe, err := p.parsePath(t)
		if err != nil {
			return err
		}
		q.groupBy = append(q.groupBy, pe)
		if p.peek().kind != tComma {
			return nil
		}
		p.next()
	}
}

// parseCollection reads devices, devices.modules or devices.jobs (any case)
// and returns a token whose text is the canonical collection name.
func (p *parser) parseCollection() (token, *Error) {
	first := p.next()
	bad := errAt(first, "expected devices, devices.modules or devices.jobs")
	if first.kind != tIdent {
		return token{}, bad
	}
	name := strings.ToLower(first.text)
	for p.peek().kind == tDot {
		p.next()
		t := p.next()
		if t.kind != tIdent {
			return token{}, bad
		}
		name += "." + strings.ToLower(t.text)
	}
	switch name {
	case CollectionDevices, CollectionModules, CollectionJobs:
		first.text = name
		return first, nil
	}
	return token{}, bad
}

func (p *parser) parseItem() (item, *Error) {
	t := p.next()
	if t.kind != tIdent || reserved[strings.ToUpper(t.text)] {
		return item{}, errAt(t, "expected '*', a property path or an aggregate")
	}
	it := item{tok: t, group: -1}
	if p.peek().kind == tLParen {
		upper := strings.ToUpper(t.text)
		agg, ok := aggregates[upper]
		if !ok {
			if _, fn := functions[upper]; fn {
				return item{}, errAt(t, "function %s is not allowed in SELECT; only COUNT, SUM, AVG, MIN and MAX", upper)
			}
			return item{}, errAt(t, "unknown aggregate %s", t.text)
		}
		p.next()
		it.agg = agg
		if agg != aggCount {
			a := p.next()
			if a.kind != tIdent || reserved[strings.ToUpper(a.text)] {
				return item{}, errAt(a, "expected a property path as the argument of %s", upper)
			}
			pe, err := p.parsePath(a)
			if err != nil {
				return item{}, err
			}
			it.path = pe
		}
		if r := p.next(); r.kind != tRParen {
			if agg == aggCount {
				return item{}, errAt(r, "expected ')': COUNT takes no argument")
			}
			return item{}, errAt(r, "expected ')'")
		}
	} else {
		pe, err := p.parsePath(t)
		if err != nil {
			return item{}, err
		}
		it.path = pe
	}
	if isKw(p.peek(), "AS") {
		p.next()
		a := p.next()
		if a.kind != tIdent || reserved[strings.ToUpper(a.text)] {
			return item{}, errAt(a, "expected an alias after AS")
		}
		it.name, it.alias = a.text, true
	}
	return it, nil
}

// parsePath reads a property path whose first name is t.
func (p *parser) parsePath(t token) (*pathExpr, *Error) {
	pe := &pathExpr{path: Path{{Name: t.text}}, pos: t.pos}
	for {
		switch p.peek().kind {
		case tDot:
			p.next()
			n := p.next()
			switch n.kind {
			case tIdent:
				pe.path = append(pe.path, Step{Name: n.text})
			case tQuotedName:
				pe.path = append(pe.path, Step{Name: n.str})
			default:
				return nil, errAt(n, "expected a property name after '.'")
			}
			continue
		case tLBrack:
			p.next()
			n := p.next()
			if n.kind != tNumber || n.num != math.Trunc(n.num) || n.num > maxTop {
				return nil, errAt(n, "expected a non-negative integer array index")
			}
			if r := p.next(); r.kind != tRBrack {
				return nil, errAt(r, "expected ']'")
			}
			pe.path = append(pe.path, Step{Index: int(n.num), IsIndex: true})
			continue
		}
		p.paths = append(p.paths, pe)
		return pe, nil
	}
}

// resolvePaths normalises every path for the collection and gives equal
// paths the same memo slot. It returns the number of slots.
func (p *parser) resolvePaths(collection string) int {
	slots := map[string]int{}
	uses := map[int]int{}
	for _, pe := range p.paths {
		pe.path = normalizePath(pe.path, collection)
		key := pe.path.String()
		s, ok := slots[key]
		if !ok {
			s = len(slots)
			slots[key] = s
		}
		pe.slot = s
		uses[s]++
	}
	for _, pe := range p.paths {
		pe.memo = uses[pe.slot] > 1
	}
	return len(slots)
}
