// SPDX-License-Identifier: MIT

package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // identifier or keyword; keywords are told apart by the parser
	tNumber         // decimal or 0x hexadecimal literal
	tString         // single- or double-quoted literal
	tStar
	tComma
	tDot
	tLParen
	tRParen
	tLBrack
	tRBrack
	tPlus
	tMinus
	tSlash
	tPercent
	tEq
	tNe // != and <>
	tLt
	tGt
	tLe
	tGe
	// tQuotedName is a member name written [[name]] after a '.', so that it
	// may hold characters a bare name cannot, such as the '-' of a
	// configuration id: configurations.[[my-config]].status (the hub's own
	// metric queries, iot-hub-automatic-device-management). str holds name.
	tQuotedName
)

// token is one lexeme. text is the source as written (used in errors), str
// the decoded value of a string literal and num the value of a number.
type token struct {
	kind tokKind
	pos  int
	text string
	str  string
	num  float64
}

// lex splits the whole query into tokens up front; the query is at most
// maxQueryLen characters, so the token slice is small and the parser can look
// ahead freely.
func lex(src string) ([]token, *Error) {
	var toks []token
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: len(src)}), nil
		}
		start := i
		c := src[i]
		afterDot := len(toks) > 0 && toks[len(toks)-1].kind == tDot
		switch {
		case afterDot && strings.HasPrefix(src[i:], "[["):
			end := strings.Index(src[i+2:], "]]")
			if end <= 0 {
				return nil, &Error{Pos: i, Token: "[[", Msg: "expected a name and ']]' after '[['"}
			}
			i += 2 + end + 2
			toks = append(toks, token{kind: tQuotedName, pos: start, text: src[start:i], str: src[start+2 : i-2]})
			continue
		case afterDot && isNameByte(src, i):
			// A member name after '.' may start with a digit: twin keys
			// such as "1stFloor" are legal (§5.6 bans only '.', '$', '#',
			// space and control characters).
			i = scanName(src, i)
			toks = append(toks, token{kind: tIdent, pos: start, text: src[start:i]})
			continue
		case isIdentStart(src, i):
			i = scanName(src, i)
			toks = append(toks, token{kind: tIdent, pos: start, text: src[start:i]})
			continue
		case c >= '0' && c <= '9':
			t, err := lexNumber(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += len(t.text)
			continue
		case c == '\'' || c == '"':
			t, err := lexString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += len(t.text)
			continue
		}
		kind, n := punct(src, i)
		if n == 0 {
			r, size := utf8.DecodeRuneInString(src[i:])
			if r == utf8.RuneError && size <= 1 {
				size = 1
			}
			return nil, &Error{Pos: i, Token: src[i : i+size], Msg: "unexpected character"}
		}
		toks = append(toks, token{kind: kind, pos: start, text: src[i : i+n]})
		i += n
	}
}

func punct(src string, i int) (tokKind, int) {
	two := ""
	if i+1 < len(src) {
		two = src[i : i+2]
	}
	switch two {
	case "!=", "<>":
		return tNe, 2
	case "<=":
		return tLe, 2
	case ">=":
		return tGe, 2
	}
	switch src[i] {
	case '*':
		return tStar, 1
	case ',':
		return tComma, 1
	case '.':
		return tDot, 1
	case '(':
		return tLParen, 1
	case ')':
		return tRParen, 1
	case '[':
		return tLBrack, 1
	case ']':
		return tRBrack, 1
	case '+':
		return tPlus, 1
	case '-':
		return tMinus, 1
	case '/':
		return tSlash, 1
	case '%':
		return tPercent, 1
	case '=':
		return tEq, 1
	case '<':
		return tLt, 1
	case '>':
		return tGt, 1
	}
	return tEOF, 0
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(src string, i int) bool {
	c := src[i]
	if c < utf8.RuneSelf {
		return c == '_' || c == '$' || (c|0x20 >= 'a' && c|0x20 <= 'z')
	}
	r, _ := utf8.DecodeRuneInString(src[i:])
	return unicode.IsLetter(r)
}

func isNameByte(src string, i int) bool {
	c := src[i]
	if c >= '0' && c <= '9' {
		return true
	}
	return isIdentStart(src, i)
}

// scanName returns the end of the run of name characters (letters, digits,
// '_' and '$') starting at i.
func scanName(src string, i int) int {
	for i < len(src) {
		c := src[i]
		if c < utf8.RuneSelf {
			if c == '_' || c == '$' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z') {
				i++
				continue
			}
			return i
		}
		r, size := utf8.DecodeRuneInString(src[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return i
		}
		i += size
	}
	return i
}

// lexNumber reads a decimal_literal (digits, optional fraction and exponent)
// or a hexadecimal_literal ("0x" and hex digits), the two number forms of the
// query-language grammar.
func lexNumber(src string, i int) (token, *Error) {
	start := i
	bad := func(end int) *Error {
		for end < len(src) && isNameByte(src, end) {
			end++
		}
		return &Error{Pos: start, Token: src[start:end], Msg: "invalid number"}
	}
	if src[i] == '0' && i+1 < len(src) && (src[i+1] == 'x' || src[i+1] == 'X') {
		i += 2
		digits := i
		for i < len(src) && isHex(src[i]) {
			i++
		}
		if i == digits || (i < len(src) && isNameByte(src, i)) {
			return token{}, bad(i)
		}
		u, err := strconv.ParseUint(src[digits:i], 16, 64)
		if err != nil {
			return token{}, &Error{Pos: start, Token: src[start:i], Msg: "hexadecimal number out of range"}
		}
		return token{kind: tNumber, pos: start, text: src[start:i], num: float64(u)}, nil
	}
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	if i < len(src) && src[i] == '.' {
		i++
		if i >= len(src) || !isDigit(src[i]) {
			return token{}, bad(i)
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if i >= len(src) || !isDigit(src[i]) {
			return token{}, bad(i)
		}
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && isNameByte(src, i) {
		return token{}, bad(i)
	}
	f, err := strconv.ParseFloat(src[start:i], 64)
	if err != nil {
		return token{}, &Error{Pos: start, Token: src[start:i], Msg: "number out of range"}
	}
	return token{kind: tNumber, pos: start, text: src[start:i], num: f}, nil
}

// lexString reads a string literal in single or double quotes. The documented
// escapes are \', \", \\ and \uXXXX; anything else after a backslash is
// refused rather than guessed at.
func lexString(src string, i int) (token, *Error) {
	start := i
	quote := src[i]
	i++
	var sb strings.Builder
	for {
		if i >= len(src) {
			return token{}, &Error{Pos: start, Token: src[start:], Msg: "unterminated string literal"}
		}
		c := src[i]
		switch {
		case c == quote:
			i++
			return token{kind: tString, pos: start, text: src[start:i], str: sb.String()}, nil
		case c == '\\':
			if i+1 >= len(src) {
				return token{}, &Error{Pos: start, Token: src[start:], Msg: "unterminated string literal"}
			}
			switch e := src[i+1]; e {
			case '\'', '"', '\\':
				sb.WriteByte(e)
				i += 2
			case 'u':
				r, n, ok := decodeU(src, i)
				if !ok {
					return token{}, &Error{Pos: i, Token: src[i:min(i+6, len(src))], Msg: `invalid \u escape: want 4 hexadecimal digits`}
				}
				sb.WriteRune(r)
				i += n
			default:
				return token{}, &Error{Pos: i, Token: src[i : i+2], Msg: `invalid escape: allowed are \', \", \\ and \uXXXX`}
			}
		default:
			sb.WriteByte(c)
			i++
		}
	}
}

// decodeU decodes \uXXXX at src[i:], joining a UTF-16 surrogate pair when a
// second \uXXXX follows a high surrogate. A lone surrogate becomes U+FFFD.
func decodeU(src string, i int) (rune, int, bool) {
	r1, ok := hex4(src, i+2)
	if !ok {
		return 0, 0, false
	}
	if r1 >= 0xD800 && r1 < 0xDC00 && i+7 < len(src) && src[i+6] == '\\' && src[i+7] == 'u' {
		if r2, ok := hex4(src, i+8); ok && r2 >= 0xDC00 && r2 < 0xE000 {
			return (r1-0xD800)<<10 + (r2 - 0xDC00) + 0x10000, 12, true
		}
	}
	if r1 >= 0xD800 && r1 < 0xE000 {
		return utf8.RuneError, 6, true
	}
	return r1, 6, true
}

func hex4(src string, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(src[i : i+4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			d = (c | 0x20) - 'a' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
