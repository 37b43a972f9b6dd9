// SPDX-License-Identifier: MIT

package query

import (
	"strconv"
	"strings"
)

// Expression grammar, loosest binding first:
//
//	expr    := and {OR and}
//	and     := not {AND not}
//	not     := NOT not | cmp
//	cmp     := add {(= | != | <> | < | > | <= | >=) add | (IN | NIN) add}
//	add     := mul {(+ | -) mul}
//	mul     := unary {(* | / | %) unary}
//	unary   := (- | +) unary | primary
//	primary := number | string | TRUE | FALSE | NULL | UNDEFINED
//	         | '(' expr ')' | '[' [expr {, expr}] ']' | name '(' args ')' | path

func (p *parser) parseExpr() (expr, *Error) { return p.parseOr() }

func (p *parser) parseOr() (expr, *Error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "OR") {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &orExpr{l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseAnd() (expr, *Error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "AND") {
		p.next()
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &andExpr{l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseNot() (expr, *Error) {
	if t := p.peek(); isKw(t, "NOT") {
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &notExpr{x: x}, nil
	}
	return p.parseCmp()
}

func (p *parser) parseCmp() (expr, *Error) {
	l, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.kind >= tEq && t.kind <= tGe:
			p.next()
			r, err := p.parseAdd()
			if err != nil {
				return nil, err
			}
			l = &binExpr{op: t.kind, l: l, r: r}
		case isKw(t, "IN"), isKw(t, "NIN"):
			p.next()
			r, err := p.parseAdd()
			if err != nil {
				return nil, err
			}
			l = &inExpr{x: l, list: r, not: isKw(t, "NIN")}
		default:
			return l, nil
		}
	}
}

func (p *parser) parseAdd() (expr, *Error) {
	l, err := p.parseMul()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tPlus || t.kind == tMinus; t = p.peek() {
		p.next()
		r, err := p.parseMul()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: t.kind, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseMul() (expr, *Error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tStar || t.kind == tSlash || t.kind == tPercent; t = p.peek() {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &binExpr{op: t.kind, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseUnary() (expr, *Error) {
	t := p.peek()
	if t.kind != tMinus && t.kind != tPlus {
		return p.parsePrimary()
	}
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	p.next()
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	e := &signExpr{neg: t.kind == tMinus, x: x}
	if _, ok := x.(*litExpr); ok {
		// Fold "-5" so that array constants with negative numbers stay
		// constant.
		return &litExpr{v: e.eval(nil)}, nil
	}
	return e, nil
}

func (p *parser) parsePrimary() (expr, *Error) {
	t := p.next()
	switch t.kind {
	case tNumber:
		return &litExpr{v: numV(t.num)}, nil
	case tString:
		return &litExpr{v: strV([]byte(t.str))}, nil
	case tLParen:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tRParen {
			return nil, errAt(r, "expected ')'")
		}
		return e, nil
	case tLBrack:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		return p.parseArray()
	case tIdent:
		upper := strings.ToUpper(t.text)
		switch upper {
		case "TRUE", "FALSE":
			return &litExpr{v: boolV(upper == "TRUE")}, nil
		case "NULL":
			return &litExpr{v: Value{kind: kNull}}, nil
		case "UNDEFINED":
			return &litExpr{}, nil
		}
		if reserved[upper] {
			break
		}
		if p.peek().kind == tLParen {
			return p.parseCall(t)
		}
		return p.parsePath(t)
	}
	return nil, errAt(t, "expected an expression")
}

// parseArray reads the elements of '[' ... ']' (the '[' is consumed).
// Arrays of constants are folded into one constant.
func (p *parser) parseArray() (expr, *Error) {
	var elems []expr
	if p.peek().kind == tRBrack {
		p.next()
		return &litExpr{v: arrV([]Value{})}, nil
	}
	for {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		elems = append(elems, e)
		t := p.next()
		if t.kind == tRBrack {
			break
		}
		if t.kind != tComma {
			return nil, errAt(t, "expected ',' or ']'")
		}
	}
	vals := make([]Value, 0, len(elems))
	for _, e := range elems {
		lit, ok := e.(*litExpr)
		if !ok {
			return &arrayExpr{elems: elems}, nil
		}
		vals = append(vals, lit.v)
	}
	return &litExpr{v: arrV(vals)}, nil
}

func (p *parser) parseCall(name token) (expr, *Error) {
	upper := strings.ToUpper(name.text)
	fn, ok := functions[upper]
	if !ok {
		if _, agg := aggregates[upper]; agg {
			return nil, errAt(name, "aggregate %s is only allowed in SELECT", upper)
		}
		return nil, errAt(name, "unknown function %s", name.text)
	}
	if err := p.enter(name); err != nil {
		return nil, err
	}
	defer p.leave()
	p.next() // '('
	var args []expr
	if p.peek().kind == tRParen {
		p.next()
	} else {
		for {
			a, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			t := p.next()
			if t.kind == tRParen {
				break
			}
			if t.kind != tComma {
				return nil, errAt(t, "expected ',' or ')'")
			}
		}
	}
	if len(args) < fn.minArgs || (fn.maxArgs >= 0 && len(args) > fn.maxArgs) {
		return nil, errAt(name, "%s takes %s", fn.name, arity(fn))
	}
	return &callExpr{fn: fn, args: args}, nil
}

func arity(fn *funcDef) string {
	switch {
	case fn.maxArgs < 0:
		return strconv.Itoa(fn.minArgs) + " or more arguments"
	case fn.minArgs == fn.maxArgs && fn.minArgs == 1:
		return "1 argument"
	case fn.minArgs == fn.maxArgs:
		return strconv.Itoa(fn.minArgs) + " arguments"
	}
	return strconv.Itoa(fn.minArgs) + " to " + strconv.Itoa(fn.maxArgs) + " arguments"
}
