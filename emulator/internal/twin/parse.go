// SPDX-License-Identifier: MIT

package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits on what parsing a body from the network may build, enforced as
// it parses, before any rule is checked or anything is stored. They sit
// well above anything the content rules (§5.6) let through, so a valid
// write never meets them and the rules keep their own precise messages:
// they only keep a hostile body from costing more than a valid one.
const (
	// maxParseDepth bounds the nesting of a whole body: a section allows
	// 10 levels (MaxDepth), and a service body puts it 3 levels down
	// (root, properties, desired) with an echoed $metadata a level deeper.
	maxParseDepth = 2 * MaxDepth
	// maxParseValues bounds the JSON values kept from one body. A section
	// within its 32 KB quota holds far fewer: every member costs at least
	// one byte of key, every number 8 bytes, every boolean 4.
	maxParseValues = 1 << 16
)

// errTooDeep and errTooManyValues are the parser's own limits.
var (
	errTooDeep       = errors.New("nesting too deep")
	errTooManyValues = errors.New("too many values")
)

// parser decodes one JSON value into a node tree, keeping member order and
// number literals. A repeated member name keeps its first position and its
// last value, as the hub's JSON library does. It applies no twin rules,
// only its limits: maxDepth levels of nesting (skipped values included),
// and at most budget values kept (0: no budget).
type parser struct {
	dec      *json.Decoder
	depth    int
	maxDepth int
	budget   int
	counted  bool // budget applies
}

func newParser(b []byte, maxDepth, budget int) *parser {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return &parser{dec: dec, maxDepth: maxDepth, budget: budget, counted: budget > 0}
}

// parse decodes a document this package wrote (the store): trusted, so
// only the depth is bounded, in case the file was damaged.
func parse(b []byte) (*node, error) {
	p := newParser(b, 4*maxParseDepth, 0)
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	return n, p.end()
}

// end checks that nothing but white space follows the value.
func (p *parser) end() error {
	if tok, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("unexpected %v after the JSON value", tok)
	}
	return nil
}

// token reads the next token; the end of input inside a value is an error.
func (p *parser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, io.ErrUnexpectedEOF
	}
	return tok, err
}

// open enters a container: one level deeper, checked before its contents
// are read.
func (p *parser) open() error {
	p.depth++
	if p.depth > p.maxDepth {
		return errTooDeep
	}
	return nil
}

// spend takes one value from the budget.
func (p *parser) spend() error {
	if !p.counted {
		return nil
	}
	if p.budget == 0 {
		return errTooManyValues
	}
	p.budget--
	return nil
}

func (p *parser) value() (*node, error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.valueFrom(tok)
}

// valueFrom builds the value that starts with tok.
func (p *parser) valueFrom(tok json.Token) (*node, error) {
	if err := p.spend(); err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case nil:
		return &node{kind: kindNull}, nil
	case bool:
		return &node{kind: kindBool, truth: v}, nil
	case json.Number:
		return &node{kind: kindNumber, text: string(v)}, nil
	case string:
		return &node{kind: kindString, text: v}, nil
	case json.Delim:
		if err := p.open(); err != nil {
			return nil, err
		}
		if v == '[' {
			return p.array()
		}
		return p.object(nil) // '{': the decoder never starts a value with '}' or ']'
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func (p *parser) array() (*node, error) {
	n := &node{kind: kindArray, elems: []*node{}}
	for p.dec.More() {
		e, err := p.value()
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, e)
	}
	return n, p.close()
}

// object reads an object's members after its '{'. keep, when not nil,
// decides per member name whether the value is built (and how: it returns
// the function that reads it) or skipped.
func (p *parser) object(keep func(name string) func() (*node, error)) (*node, error) {
	n := newObject()
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a member name belongs", tok)
		}
		read := p.value
		if keep != nil {
			if read = keep(k); read == nil {
				if err := p.skip(); err != nil {
					return nil, err
				}
				continue
			}
		}
		v, err := read()
		if err != nil {
			return nil, err
		}
		n.set(k, v)
	}
	return n, p.close()
}

// skip reads one value without building it; its nesting still counts.
func (p *parser) skip() error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if err := p.open(); err != nil {
		return err
	}
	if d == '{' {
		for p.dec.More() {
			if _, err := p.token(); err != nil { // the member name
				return err
			}
			if err := p.skip(); err != nil {
				return err
			}
		}
	} else {
		for p.dec.More() {
			if err := p.skip(); err != nil {
				return err
			}
		}
	}
	return p.close()
}

// close consumes the ']' or '}' that dec.More announced.
func (p *parser) close() error {
	p.depth--
	_, err := p.token()
	return err
}

// inputError turns a parse failure of a body into the client's error:
// the limits get their own messages, anything else is malformed JSON.
// path and title name what was parsed ("properties.reported" and
// "Properties.Reported", or "twin" and "Twin" for a whole service body).
func inputError(err error, path, title string) *Error {
	switch {
	case errors.Is(err, errTooDeep):
		return invalidf("", "%s: nesting exceeds the maximum depth of %d levels", path, MaxDepth)
	case errors.Is(err, errTooManyValues):
		return &Error{Kind: ErrTooLarge, Path: path,
			Msg: fmt.Sprintf("'%s' update holds more than %d values, far more than a section within its size quota can", title, maxParseValues)}
	}
	return invalidf("", "malformed JSON in the %s update: %v", path, err)
}
