// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		code int // 0: valid
	}{
		{"letters and digits", "Device01", 0},
		{"every special character", "-:.+%_#*?!(),=@;$'", 0},
		{"128 characters", strings.Repeat("x", 128), 0},
		{"one character", "a", 0},
		{"empty", "", 400005},
		{"129 characters", strings.Repeat("x", 129), 400004},
		{"space", "a b", 400004},
		{"slash", "a/b", 400004},
		{"backslash", `a\b`, 400004},
		{"ampersand", "a&b", 400004},
		{"double quote", `a"b`, 400004},
		{"angle bracket", "a<b", 400004},
		{"braces", "a{b}", 400004},
		{"NUL", "a\x00b", 400004},
		{"non-ASCII", "caf\u00e9", 400004},
		{"tab", "a\tb", 400004},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateDeviceID(tc.id)
			if tc.code == 0 {
				if err != nil {
					t.Errorf("ValidateDeviceID(%q) = %v, want nil", tc.id, err)
				}
				return
			}
			wantCode(t, "ValidateDeviceID", err, tc.code)
		})
	}
}

func TestValidateModuleID(t *testing.T) {
	if err := ValidateModuleID("$edgeAgent"); err != nil {
		t.Errorf("ValidateModuleID($edgeAgent) = %v, want nil", err)
	}
	wantCode(t, "empty module id", ValidateModuleID(""), 400005)
	wantCode(t, "bad module id", ValidateModuleID("a/b"), 400004)
	err := ValidateModuleID("a b")
	if err == nil || !strings.Contains(err.Error(), "module") {
		t.Errorf("got %v, want an error that names the module id", err)
	}
}

func TestValidateKey(t *testing.T) {
	key := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"16 bytes", key(16), true},
		{"32 bytes", key(32), true},
		{"64 bytes", key(64), true},
		{"15 bytes", key(15), false},
		{"65 bytes", key(65), false},
		{"empty", "", false},
		{"not base64", "****", false},
		{"unpadded", strings.TrimRight(key(32), "="), false},
		{"URL alphabet", "-_" + key(32)[2:], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validateKey("primary", tc.key)
			if tc.ok {
				if err != nil {
					t.Errorf("validateKey(%q) = %v, want nil", tc.key, err)
				}
				return
			}
			wantCode(t, "validateKey", err, 400004)
		})
	}
}
