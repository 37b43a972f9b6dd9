// SPDX-License-Identifier: MIT

package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  Error
	}{
		{"empty", "", Error{0, "", "expected SELECT"}},
		{"blank", "   ", Error{3, "", "expected SELECT"}},
		{"misspelt select", "SELEC * FROM devices", Error{0, "SELEC", "expected SELECT"}},
		{"misspelt where", "SELECT * FROM devices WHER x = 1", Error{22, "WHER", "expected WHERE, GROUP BY or end of query"}},
		{"missing comma", "SELECT deviceId status FROM devices", Error{16, "status", "expected FROM"}},
		{"projection expression", "SELECT deviceId + 1 FROM devices", Error{16, "+", "expected FROM"}},
		{"missing from", "SELECT *", Error{8, "", "expected FROM"}},
		{"unknown collection", "SELECT * FROM things", Error{14, "things", "expected devices, devices.modules or devices.jobs"}},
		{"unknown sub-collection", "SELECT * FROM devices.twins", Error{14, "devices", "expected devices, devices.modules or devices.jobs"}},
		{"where without condition", "SELECT * FROM devices WHERE", Error{27, "", "expected an expression"}},
		{"dangling operator", "SELECT * FROM devices WHERE deviceId =", Error{38, "", "expected an expression"}},
		{"keyword as operand", "SELECT * FROM devices WHERE AND = 1", Error{28, "AND", "expected an expression"}},
		{"unterminated string", "SELECT * FROM devices WHERE deviceId = 'abc", Error{39, "'abc", "unterminated string literal"}},
		{"undocumented escape", `SELECT * FROM devices WHERE deviceId = 'a\nb'`, Error{41, `\n`, `invalid escape: allowed are \', \", \\ and \uXXXX`}},
		{"short unicode escape", `SELECT * FROM devices WHERE deviceId = '\u12'`, Error{40, `\u12'`, `invalid \u escape: want 4 hexadecimal digits`}},
		{"hex without digits", "SELECT * FROM devices WHERE version = 0x", Error{38, "0x", "invalid number"}},
		{"digits run into a name", "SELECT * FROM devices WHERE 1abc = 1", Error{28, "1abc", "invalid number"}},
		{"dangling exponent", "SELECT * FROM devices WHERE version = 1e", Error{38, "1e", "invalid number"}},
		{"unexpected character", "SELECT * FROM devices WHERE deviceId = 'a'; DROP", Error{42, ";", "unexpected character"}},
		{"trailing token", "SELECT * FROM devices WHERE deviceId = 'a' deviceId", Error{43, "deviceId", "expected an operator, GROUP BY or end of query"}},
		{"unclosed parenthesis", "SELECT * FROM devices WHERE (deviceId = 'a'", Error{43, "", "expected ')'"}},
		{"unclosed array", "SELECT * FROM devices WHERE deviceId IN ['a' 'b']", Error{45, "'b'", "expected ',' or ']'"}},
		{"unknown function", "SELECT * FROM devices WHERE FOO(deviceId)", Error{28, "FOO", "unknown function FOO"}},
		{"wrong arity", "SELECT * FROM devices WHERE STARTSWITH(deviceId)", Error{28, "STARTSWITH", "STARTS_WITH takes 2 arguments"}},
		{"wrong arity range", "SELECT * FROM devices WHERE SUBSTRING(deviceId)", Error{28, "SUBSTRING", "SUBSTRING takes 2 to 3 arguments"}},
		{"concat needs two", "SELECT * FROM devices WHERE CONCAT(deviceId) = 'a'", Error{28, "CONCAT", "CONCAT takes 2 or more arguments"}},
		{"aggregate in where", "SELECT * FROM devices WHERE COUNT() > 1", Error{28, "COUNT", "aggregate COUNT is only allowed in SELECT"}},
		{"scalar function in select", "SELECT LOWER(deviceId) FROM devices", Error{7, "LOWER", "function LOWER is not allowed in SELECT; only COUNT, SUM, AVG, MIN and MAX"}},
		{"count with argument", "SELECT COUNT(deviceId) FROM devices", Error{13, "deviceId", "expected ')': COUNT takes no argument"}},
		{"sum without path", "SELECT SUM() FROM devices", Error{11, ")", "expected a property path as the argument of SUM"}},
		{"alias missing", "SELECT deviceId AS FROM devices", Error{19, "FROM", "expected an alias after AS"}},
		{"alias not a name", "SELECT deviceId AS 'x' FROM devices", Error{19, "'x'", "expected an alias after AS"}},
		{"ungrouped path with aggregate", "SELECT deviceId, COUNT() FROM devices", Error{7, "deviceId", "deviceId must appear in GROUP BY when aggregates or GROUP BY are used"}},
		{"path not in group by", "SELECT status, tags.env FROM devices GROUP BY status", Error{15, "tags", "tags.env must appear in GROUP BY when aggregates or GROUP BY are used"}},
		{"group by star", "SELECT * FROM devices GROUP BY status", Error{22, "GROUP", "GROUP BY needs a projection list, not *"}},
		{"group without by", "SELECT status FROM devices GROUP status", Error{33, "status", "expected BY"}},
		{"group by expression", "SELECT status FROM devices GROUP BY 1", Error{36, "1", "expected a property path"}},
		{"group by trailing", "SELECT status FROM devices GROUP BY status status", Error{43, "status", "expected ',' or end of query"}},
		{"duplicate output name", "SELECT properties.desired.fanSpeed, properties.reported.fanSpeed FROM devices", Error{36, "properties", `duplicate output name "fanSpeed"; use AS to rename`}},
		{"duplicate alias", "SELECT COUNT() AS n, deviceId AS n FROM devices GROUP BY deviceId", Error{21, "deviceId", `duplicate output name "n"; use AS to rename`}},
		{"jobs projection", "SELECT jobId FROM devices.jobs", Error{7, "jobId", "devices.jobs supports only SELECT *"}},
		{"negative top", "SELECT TOP -1 * FROM devices", Error{11, "-", "expected a non-negative integer after TOP"}},
		{"fractional top", "SELECT TOP 1.5 * FROM devices", Error{11, "1.5", "expected a non-negative integer after TOP"}},
		{"top without count", "SELECT TOP * FROM devices", Error{11, "*", "expected a non-negative integer after TOP"}},
		{"top without projection", "SELECT TOP 5 FROM devices", Error{13, "FROM", "expected '*', a property path or an aggregate"}},
		{"empty projection", "SELECT FROM devices", Error{7, "FROM", "expected '*', a property path or an aggregate"}},
		{"trailing comma", "SELECT deviceId, FROM devices", Error{17, "FROM", "expected '*', a property path or an aggregate"}},
		{"dot without name", "SELECT * FROM devices WHERE tags. = 1", Error{34, "=", "expected a property name after '.'"}},
		{"bad array index", "SELECT * FROM devices WHERE tags.a['x'] = 1", Error{35, "'x'", "expected a non-negative integer array index"}},
		{"unclosed array index", "SELECT * FROM devices WHERE tags.a[1 = 1", Error{37, "=", "expected ']'"}},
		{"too deep", "SELECT * FROM devices WHERE " + strings.Repeat("(", 70) + "1" + strings.Repeat(")", 70),
			Error{28 + 64, "(", "expression nested too deeply (limit 64)"}},
		{"too deep with not", "SELECT * FROM devices WHERE " + strings.Repeat("NOT ", 70) + "true",
			Error{28 + 4*64, "NOT", "expression nested too deeply (limit 64)"}},
		{"too long", "SELECT * FROM devices WHERE deviceId = '" + strings.Repeat("é", 8200) + "'",
			Error{40 + 2*(8192-40), "é", "query text is longer than 8192 characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.query)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.query, q)
			}
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"near a token", Error{27, "WHER", "expected FROM"}, "syntax error at position 27 near 'WHER': expected FROM"},
		{"at the end", Error{27, "", "expected an expression"}, "syntax error at position 27 at end of query: expected an expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseConditionErrors(t *testing.T) {
	tests := []struct {
		name string
		cond string
		want Error
	}{
		{"empty", "", Error{0, "", "expected an expression"}},
		{"where keyword", "WHERE deviceId = 'a'", Error{0, "WHERE", "expected an expression"}},
		{"dangling", "tags.x =", Error{8, "", "expected an expression"}},
		{"trailing", "deviceId = 'a' b", Error{15, "b", "expected an operator or end of condition"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCondition(tt.cond)
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("got error %v, want an *Error", err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
