// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/base64"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// maxIDLength is the hub's limit for device and module ids (identity-registry page).
const maxIDLength = 128

// idChar reports whether c may appear in a device or module id: ASCII
// alphanumerics plus the identity registry's special characters, plus ':'
// and ';' which the REST model text also allows (iothub-protocol.md §10).
func idChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '+', '%', '_', '#', '*', '?', '!', '(', ')', ',', '=', '@', '$', '\'', ':', ';':
		return true
	}
	return false
}

func validateID(kind, id string) error {
	if id == "" {
		return huberr.ArgumentNull("The %s id must not be empty.", kind)
	}
	if len(id) > maxIDLength {
		return huberr.ArgumentInvalid("The %s id '%.20s...' is %d characters long; the maximum is %d.", kind, id, len(id), maxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return huberr.ArgumentInvalid("The %s id '%s' contains the character %q at position %d; ids may contain only ASCII letters, digits and - . + %% _ # * ? ! ( ) , = @ $ ' : ;", kind, id, id[i], i)
		}
	}
	return nil
}

// ValidateDeviceID checks id against the hub's rules.
func ValidateDeviceID(id string) error { return validateID("device", id) }

// ValidateModuleID checks id against the hub's rules.
func ValidateModuleID(id string) error { return validateID("module", id) }

// validateKey checks a symmetric key: base64 of 16 to 64 bytes
// (iothub-protocol.md §11 item 10).
func validateKey(which, k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return huberr.ArgumentInvalid("The %s key is not valid base64.", which)
	}
	if len(b) < 16 || len(b) > 64 {
		return huberr.ArgumentInvalid("The %s key must decode to between 16 and 64 bytes; it has %d.", which, len(b))
	}
	return nil
}
