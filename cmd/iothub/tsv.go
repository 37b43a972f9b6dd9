// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// writeTSV writes v as az's -o tsv does, for scripts: a line per result (an
// array's elements, or v itself), holding the values of its top-level
// fields in order, tab-separated. Strings are written bare, null as
// nothing, nested objects and arrays as compact JSON.
//
//	export IOTHUB_DEVICE_CONNECTION_STRING=$(iothub device connection-string show myDevice -o tsv)
func writeTSV(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	raw := bytes.TrimSpace(buf.Bytes())
	rows := []json.RawMessage{raw}
	if len(raw) > 0 && raw[0] == '[' {
		rows = nil
		if err := json.Unmarshal(raw, &rows); err != nil {
			return err
		}
	}
	var out strings.Builder
	for _, r := range rows {
		cells, err := members(r)
		if err != nil {
			return err
		}
		for i, cell := range cells {
			if i > 0 {
				out.WriteByte('\t')
			}
			out.WriteString(tsvCell(cell))
		}
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// members returns the values of an object's members in document order, or
// raw itself when it is not an object.
func members(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return []json.RawMessage{raw}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var vals []json.RawMessage
	for dec.More() {
		if _, err := dec.Token(); err != nil { // the member's name
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func tsvCell(raw json.RawMessage) string {
	switch {
	case len(raw) == 0, string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case raw[0] == '{' || raw[0] == '[':
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
	}
	return string(raw)
}
