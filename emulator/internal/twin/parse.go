// SPDX-License-Identifier: MIT

package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// parse decodes one JSON value into a node tree, keeping member order and
// number literals. A repeated member name keeps its first position and its
// last value, as the hub's JSON library does. parse applies no twin rules.
func parse(b []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("unexpected %v after the JSON value", tok)
	}
	return n, nil
}

func parseValue(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
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
		if v == '[' {
			return parseArray(dec)
		}
		return parseObject(dec) // '{': the decoder never starts a value with '}' or ']'
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func parseArray(dec *json.Decoder) (*node, error) {
	n := &node{kind: kindArray, elems: []*node{}}
	for dec.More() {
		e, err := parseValue(dec)
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, e)
	}
	return n, closing(dec)
}

func parseObject(dec *json.Decoder) (*node, error) {
	n := newObject()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a member name belongs", tok)
		}
		v, err := parseValue(dec)
		if err != nil {
			return nil, err
		}
		n.set(k, v)
	}
	return n, closing(dec)
}

// closing consumes the ']' or '}' that dec.More announced.
func closing(dec *json.Decoder) error {
	_, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
