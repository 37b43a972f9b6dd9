// SPDX-License-Identifier: MIT

package hub

import (
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/sas"
)

// newAuthentication validates a requested authentication block and fills in
// what the hub generates: keys left empty on a SAS identity. On update,
// prev supplies keys the request leaves empty.
func newAuthentication(in Authentication, prev *Authentication) (Authentication, error) {
	typ := in.Type
	if typ == "" {
		typ = AuthSAS
		if prev != nil && in.SymmetricKey == nil && in.X509Thumbprint == nil {
			typ = prev.Type
		}
	}
	out := Authentication{Type: typ}
	switch typ {
	case AuthSAS:
		k := SymmetricKey{}
		if in.SymmetricKey != nil {
			k = *in.SymmetricKey
		}
		if prev != nil && prev.SymmetricKey != nil {
			if k.PrimaryKey == "" {
				k.PrimaryKey = prev.SymmetricKey.PrimaryKey
			}
			if k.SecondaryKey == "" {
				k.SecondaryKey = prev.SymmetricKey.SecondaryKey
			}
		}
		if k.PrimaryKey == "" {
			k.PrimaryKey = sas.GenerateKey()
		}
		if k.SecondaryKey == "" {
			k.SecondaryKey = sas.GenerateKey()
		}
		if err := validateKey("primary", k.PrimaryKey); err != nil {
			return out, err
		}
		if err := validateKey("secondary", k.SecondaryKey); err != nil {
			return out, err
		}
		out.SymmetricKey = &k
		out.X509Thumbprint = &X509Thumbprint{}
	case AuthSelfSigned:
		// The registry model asks for at least one of the two thumbprints;
		// an empty one means none, as null does.
		var t X509Thumbprint
		if in.X509Thumbprint != nil {
			var err error
			if t.PrimaryThumbprint, err = normalizeThumbprint(in.X509Thumbprint.PrimaryThumbprint); err != nil {
				return out, err
			}
			if t.SecondaryThumbprint, err = normalizeThumbprint(in.X509Thumbprint.SecondaryThumbprint); err != nil {
				return out, err
			}
		}
		if t.PrimaryThumbprint == nil && t.SecondaryThumbprint == nil {
			return out, huberr.ArgumentInvalid("A selfSigned device needs a primary or a secondary thumbprint.")
		}
		out.X509Thumbprint = &t
		out.SymmetricKey = &SymmetricKey{}
	case AuthCA, AuthNone:
		out.X509Thumbprint = &X509Thumbprint{}
		out.SymmetricKey = &SymmetricKey{}
	default:
		return out, huberr.ArgumentInvalid("Authentication type '%s' is not valid; use sas, selfSigned or certificateAuthority.", typ)
	}
	return out, nil
}

// normalizeThumbprint returns a thumbprint in upper-case hex without
// colons, nil for none.
func normalizeThumbprint(p *string) (*string, error) {
	if p == nil || *p == "" {
		return nil, nil
	}
	v := strings.ToUpper(strings.ReplaceAll(*p, ":", ""))
	if !isThumbprint(v) {
		return nil, huberr.ArgumentInvalid("Thumbprint '%s' is not a SHA-1 or SHA-256 hex digest.", *p)
	}
	return &v, nil
}

func isThumbprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
