// SPDX-License-Identifier: MIT

package twin

import (
	"errors"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// fastParse builds the node tree of a stored document (what this package
// wrote) straight from its bytes. Every twin write and read decodes its
// stored twin, and json.Decoder's token API spends most of that time on
// allocating and interface conversions; this parser reads the same
// grammar and gives the same tree as parse for any input parse accepts
// (FuzzFastParse checks both), and fails on any other. Unmarshal falls
// back to parse on failure, so that errors keep its messages.
func fastParse(b []byte) (*node, error) {
	return fastParseLimited(b, 4*maxParseDepth, 0) // parse's bounds for stored documents
}

// fastParseLimited is fastParse within newParser's limits: maxDepth levels
// of nesting and at most budget values (0: no budget). It succeeds exactly
// when the parser with those limits does, with the same tree
// (FuzzFastParse); a caller that needs the parser's account of a failure
// asks it.
func fastParseLimited(b []byte, maxDepth, budget int) (*node, error) {
	p := fastParser{b: b, maxDepth: maxDepth, budget: budget, counted: budget > 0}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, errSyntax
	}
	return n, nil
}

// errSyntax is fastParse's error for anything but its limits (errTooDeep,
// errTooManyValues): parse tells what is wrong.
var errSyntax = errors.New("invalid JSON")

type fastParser struct {
	b        []byte
	i        int
	depth    int
	maxDepth int
	budget   int
	counted  bool // budget applies
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) value() (*node, error) {
	p.space()
	if p.i >= len(p.b) {
		return nil, errSyntax
	}
	if p.counted {
		if p.budget == 0 {
			return nil, errTooManyValues
		}
		p.budget--
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &node{kind: kindString, text: s}, nil
	case c == 't':
		return p.literal("true", &node{kind: kindBool, truth: true})
	case c == 'f':
		return p.literal("false", &node{kind: kindBool})
	case c == 'n':
		return p.literal("null", &node{kind: kindNull})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, errSyntax
}

func (p *fastParser) literal(word string, n *node) (*node, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, errSyntax
	}
	p.i += len(word)
	return n, nil
}

// number reads a JSON number and keeps its literal text.
func (p *fastParser) number() (*node, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i >= len(p.b):
		return nil, errSyntax
	case p.b[p.i] == '0':
		p.i++
	case p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, errSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, errSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, errSyntax
		}
	}
	return &node{kind: kindNumber, text: string(p.b[start:p.i])}, nil
}

func (p *fastParser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

func (p *fastParser) open() error {
	p.depth++
	if p.depth > p.maxDepth {
		return errTooDeep
	}
	p.i++
	return nil
}

func (p *fastParser) array() (*node, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	n := &node{kind: kindArray, elems: []*node{}}
	if p.closes(']') {
		return n, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, v)
		more, err := p.more(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return n, nil
		}
	}
}

// closes consumes the closing byte of an empty container, if it follows.
func (p *fastParser) closes(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		p.depth--
		return true
	}
	return false
}

// more reads what follows an element or member: a comma (more follow) or
// the container's closing byte c (it ends).
func (p *fastParser) more(c byte) (bool, error) {
	p.space()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			return true, nil
		case c:
			p.i++
			p.depth--
			return false, nil
		}
	}
	return false, errSyntax
}

func (p *fastParser) object() (*node, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	n := newObject()
	if p.closes('}') {
		return n, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errSyntax
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errSyntax
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.set(k, v)
		more, err := p.more('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return n, nil
		}
	}
}

// str reads a string at its opening quote and returns it unescaped, as
// encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func (p *fastParser) str() (string, error) {
	p.i++
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", errSyntax
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", errSyntax
			}
			switch e := p.b[p.i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(p.b[p.i+2:])
				if !ok {
					return "", errSyntax
				}
				p.i += 6
				if utf16.IsSurrogate(r) {
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						if r1, ok := hex4(p.b[p.i+2:]); ok {
							if dec := utf16.DecodeRune(r, r1); dec != unicode.ReplacementChar {
								p.i += 6
								buf = utf8.AppendRune(buf, dec)
								continue
							}
						}
					}
					r = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return "", errSyntax
			}
			p.i += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, p.b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return "", errSyntax
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
