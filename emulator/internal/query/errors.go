// SPDX-License-Identifier: MIT

package query

import "fmt"

// Error is a query that could not be parsed or is not supported. Pos is the
// 0-based byte offset of the offending token in the query text, Token its
// source text ("" at the end of the query) and Msg what was expected or why
// the construct is refused.
type Error struct {
	Pos   int    // 0-based byte offset into the query text
	Token string // offending token as written; "" at the end of the query
	Msg   string // what went wrong, e.g. "expected FROM"
}

// Error renders the message the REST layer puts into its 400 response, e.g.
// "syntax error at position 27 near 'WHER': expected FROM".
func (e *Error) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("syntax error at position %d at end of query: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("syntax error at position %d near '%s': %s", e.Pos, e.Token, e.Msg)
}

func errAt(t token, format string, args ...any) *Error {
	return &Error{Pos: t.pos, Token: t.text, Msg: fmt.Sprintf(format, args...)}
}
