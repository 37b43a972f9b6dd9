// SPDX-License-Identifier: MIT

package query

import "math"

// evalCtx evaluates expressions against one document. It memoises path
// lookups per document (a path used in WHERE and again in SELECT, or twice
// in one condition, is scanned for once); a generation counter invalidates
// the memo without clearing it.
type evalCtx struct {
	doc     Document
	raw     []byte // when set, the document is raw JSON (saves boxing it)
	gen     uint32
	slotGen []uint32
	slots   []Value
	sink    byte // keeps warm's loads from being optimised away
}

func newEvalCtx(nslots int) *evalCtx {
	return &evalCtx{slotGen: make([]uint32, nslots), slots: make([]Value, nslots)}
}

func (c *evalCtx) reset(doc Document) {
	c.doc, c.raw = doc, nil
	c.next()
}

func (c *evalCtx) resetRaw(b []byte) {
	c.doc, c.raw = nil, b
	c.next()
}

func (c *evalCtx) next() {
	c.gen++
	if c.gen == 0 {
		clear(c.slotGen)
		c.gen = 1
	}
}

// warm reads one byte of every cache line of a document before it is
// scanned. These loads are independent, so the CPU fetches the lines in
// parallel; the scanner alone would wait for them one after another. Over a
// store larger than the CPU caches this cuts query time by about a quarter
// (BenchmarkQueryWhere100k).
func (c *evalCtx) warm(d []byte) {
	var s byte
	for k := 0; k < len(d); k += 64 {
		s += d[k]
	}
	c.sink += s
}

func (c *evalCtx) find(p Path) Value {
	var v Value
	var ok bool
	if c.raw != nil {
		v, ok = rawLookup(c.raw, p)
	} else {
		v, ok = c.doc.Lookup(p)
	}
	if !ok {
		return Value{}
	}
	return v
}

// expr is a node of a WHERE expression.
type expr interface {
	eval(c *evalCtx) Value
}

type litExpr struct{ v Value }

func (e *litExpr) eval(*evalCtx) Value { return e.v }

// pathExpr reads a property of the document. Paths that occur more than
// once in the query share a memo slot; the others skip the memo, whose
// bookkeeping would cost more than it saves.
type pathExpr struct {
	path Path
	slot int
	memo bool
	pos  int
}

func (e *pathExpr) eval(c *evalCtx) Value {
	if !e.memo {
		return c.find(e.path)
	}
	if c.slotGen[e.slot] == c.gen {
		return c.slots[e.slot]
	}
	v := c.find(e.path)
	c.slotGen[e.slot] = c.gen
	c.slots[e.slot] = v
	return v
}

// Logic is three-valued, as in the SQL dialect the language derives from:
// operands that are not booleans are undefined, AND is false as soon as one
// side is false, OR true as soon as one side is true, otherwise undefined.
// Only a true result satisfies a WHERE clause.

type notExpr struct{ x expr }

func (e *notExpr) eval(c *evalCtx) Value {
	v := e.x.eval(c)
	if v.kind != kBool {
		return Value{}
	}
	return boolV(!v.b)
}

type andExpr struct{ l, r expr }

func (e *andExpr) eval(c *evalCtx) Value {
	l := e.l.eval(c)
	if l.kind == kBool && !l.b {
		return l
	}
	r := e.r.eval(c)
	switch {
	case r.kind == kBool && !r.b:
		return r
	case l.truthy() && r.truthy():
		return boolV(true)
	}
	return Value{}
}

type orExpr struct{ l, r expr }

func (e *orExpr) eval(c *evalCtx) Value {
	l := e.l.eval(c)
	if l.truthy() {
		return l
	}
	r := e.r.eval(c)
	switch {
	case r.truthy():
		return r
	case l.kind == kBool && r.kind == kBool:
		return boolV(false)
	}
	return Value{}
}

// signExpr is unary minus or plus; both want a number.
type signExpr struct {
	neg bool
	x   expr
}

func (e *signExpr) eval(c *evalCtx) Value {
	v := e.x.eval(c)
	if v.kind != kNumber {
		return Value{}
	}
	if e.neg {
		return numV(-v.n)
	}
	return numV(v.n)
}

// binExpr is an arithmetic or comparison operator. Arithmetic is defined on
// two numbers; division or modulo by zero is undefined. Comparisons follow
// compare: two primitives of the same type, else undefined.
type binExpr struct {
	op   tokKind
	l, r expr
}

func (e *binExpr) eval(c *evalCtx) Value {
	l, r := e.l.eval(c), e.r.eval(c)
	switch e.op {
	case tPlus, tMinus, tStar, tSlash, tPercent:
		if l.kind != kNumber || r.kind != kNumber {
			return Value{}
		}
		switch e.op {
		case tPlus:
			return numOrUndef(l.n + r.n)
		case tMinus:
			return numOrUndef(l.n - r.n)
		case tStar:
			return numOrUndef(l.n * r.n)
		case tSlash:
			if r.n == 0 {
				return Value{}
			}
			return numOrUndef(l.n / r.n)
		default:
			if r.n == 0 {
				return Value{}
			}
			return numOrUndef(math.Mod(l.n, r.n))
		}
	}
	cmp, ok := compare(l, r)
	if !ok {
		return Value{}
	}
	switch e.op {
	case tEq:
		return boolV(cmp == 0)
	case tNe:
		return boolV(cmp != 0)
	case tLt:
		return boolV(cmp < 0)
	case tLe:
		return boolV(cmp <= 0)
	case tGt:
		return boolV(cmp > 0)
	default:
		return boolV(cmp >= 0)
	}
}

// inExpr is IN, or NIN when not is set. The left side must be a primitive
// and the right side an array; otherwise the result is undefined.
type inExpr struct {
	x, list expr
	not     bool
}

func (e *inExpr) eval(c *evalCtx) Value {
	x := e.x.eval(c)
	if x.kind < kNull || x.kind > kString {
		return Value{}
	}
	list := e.list.eval(c)
	if list.kind != kArray {
		return Value{}
	}
	for _, el := range list.elements() {
		if cmp, ok := compare(x, el); ok && cmp == 0 {
			return boolV(!e.not)
		}
	}
	return boolV(e.not)
}

type callExpr struct {
	fn   *funcDef
	args []expr
}

func (e *callExpr) eval(c *evalCtx) Value {
	args := make([]Value, len(e.args))
	for i, a := range e.args {
		args[i] = a.eval(c)
	}
	return e.fn.call(args)
}

// arrayExpr builds an array from expressions that are not all constants
// (constant arrays are folded into a litExpr by the parser).
type arrayExpr struct{ elems []expr }

func (e *arrayExpr) eval(c *evalCtx) Value {
	vs := make([]Value, len(e.elems))
	for i, x := range e.elems {
		vs[i] = x.eval(c)
	}
	return arrV(vs)
}
