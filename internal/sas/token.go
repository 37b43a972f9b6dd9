// SPDX-License-Identifier: MIT

package sas

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// TokenPrefix starts every SAS token; exactly one space follows it.
const TokenPrefix = "SharedAccessSignature "

// DefaultSkew is the clock skew the hub's validator tolerates after se
// (SharedAccessSignatureConstants.MaxClockSkew in the C# SDK).
const DefaultSkew = 5 * time.Minute

// Token is a parsed SAS token.
type Token struct {
	RawResource string    // sr exactly as it appears in the token (still encoded); it is what was signed
	Resource    string    // sr decoded
	Signature   string    // sig decoded (base64 text)
	RawExpiry   string    // se exactly as sent
	Expiry      time.Time // se as a time
	KeyName     string    // skn decoded, "" when the token was signed with a device or module key
}

// NewToken returns a SAS token for resourceURI (unencoded, as built by
// ResourceURI) signed with base64Key, valid until expiry (truncated to whole
// seconds). keyName is the policy name sent as skn; pass "" for a device or
// module key. The output matches the Node SDK byte for byte: sr, sig, [skn,]
// se in that order, each value encoded as Node encodes it.
func NewToken(resourceURI, keyName, base64Key string, expiry time.Time) (string, error) {
	if resourceURI == "" {
		return "", errors.New("sas: empty resource URI")
	}
	key, err := decodeKey(base64Key)
	if err != nil {
		return "", err
	}
	sr := encodeComponent(resourceURI)
	se := strconv.FormatInt(expiry.Unix(), 10)
	var b strings.Builder
	b.WriteString(TokenPrefix)
	b.WriteString("sr=" + sr)
	b.WriteString("&sig=" + encodeComponent(sign(key, sr+"\n"+se)))
	if keyName != "" {
		b.WriteString("&skn=" + encodeComponent(keyName))
	}
	b.WriteString("&se=" + se)
	return b.String(), nil
}

// ParseToken parses a SAS token. It requires the "SharedAccessSignature "
// prefix followed by '&'-separated name=value fields without whitespace.
// Field names are matched case-insensitively (as the C# validator does),
// each at most once; sr, sig and se are required, skn is optional and other
// names are ignored. se must be a non-negative integer number of seconds.
// The error describes the first defect found.
func ParseToken(s string) (Token, error) {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("sas: token does not start with %q", TokenPrefix)
	}
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		return Token{}, fmt.Errorf("sas: token has whitespace at offset %d; only one space, after %q, is allowed", len(TokenPrefix)+i, strings.TrimSpace(TokenPrefix))
	}
	fields := map[string]string{}
	for item := range strings.SplitSeq(rest, "&") {
		if item == "" {
			continue // a stray '&' is harmless, as in the C# validator
		}
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return Token{}, fmt.Errorf("sas: token field %q has no '='", item)
		}
		name = strings.ToLower(name)
		switch name {
		case "sr", "sig", "se", "skn":
		default:
			continue
		}
		if _, dup := fields[name]; dup {
			return Token{}, fmt.Errorf("sas: token field %s appears more than once", name)
		}
		fields[name] = value
	}
	for _, name := range []string{"sr", "sig", "se"} {
		if fields[name] == "" {
			return Token{}, fmt.Errorf("sas: token is missing %s", name)
		}
	}

	t := Token{RawResource: fields["sr"], RawExpiry: fields["se"]}
	var err error
	if t.Resource, err = decodeComponent(t.RawResource); err != nil {
		return Token{}, fmt.Errorf("sas: token sr is not URL-encoded correctly: %w", err)
	}
	if t.Signature, err = decodeComponent(fields["sig"]); err != nil {
		return Token{}, fmt.Errorf("sas: token sig is not URL-encoded correctly: %w", err)
	}
	if t.KeyName, err = decodeComponent(fields["skn"]); err != nil {
		return Token{}, fmt.Errorf("sas: token skn is not URL-encoded correctly: %w", err)
	}
	if t.Expiry, err = parseExpiry(t.RawExpiry); err != nil {
		return Token{}, err
	}
	return t, nil
}

// maxExpiry is the last second of year 9999, the limit of .NET's DateTime
// (the C# validator rejects later values) and far below the point where
// time.Unix overflows.
const maxExpiry = 253402300799

func parseExpiry(se string) (time.Time, error) {
	for i := 0; i < len(se); i++ {
		if se[i] < '0' || se[i] > '9' {
			return time.Time{}, fmt.Errorf("sas: token se %q is not an integer number of seconds", se)
		}
	}
	n, err := strconv.ParseInt(se, 10, 64)
	if err != nil || n > maxExpiry {
		return time.Time{}, fmt.Errorf("sas: token se %q is out of range", se)
	}
	return time.Unix(n, 0).UTC(), nil
}

// String formats t as a token: sr and se as received, sig and skn
// re-encoded, in Node's field order. For a token from NewToken it returns
// the original text.
func (t Token) String() string {
	s := TokenPrefix + "sr=" + t.RawResource + "&sig=" + encodeComponent(t.Signature)
	if t.KeyName != "" {
		s += "&skn=" + encodeComponent(t.KeyName)
	}
	return s + "&se=" + t.RawExpiry
}

// Verify reports whether t was signed with base64Key. Like the hub, it
// HMACs sr and se exactly as they were sent, so the signer's choice of
// escaping does not matter, and compares in constant time.
func (t Token) Verify(base64Key string) bool {
	key, err := decodeKey(base64Key)
	if err != nil {
		return false
	}
	want := sign(key, t.RawResource+"\n"+t.RawExpiry)
	return hmac.Equal([]byte(want), []byte(t.Signature))
}

// VerifyKeyText reports whether t was signed with the key's text itself as
// the HMAC key, as Service Bus and Event Hubs clients sign (@azure/core-amqp,
// azeventhubs), where IoT Hub clients sign with the base64-decoded key.
func (t Token) VerifyKeyText(key string) bool {
	if key == "" {
		return false
	}
	want := sign([]byte(key), t.RawResource+"\n"+t.RawExpiry)
	return hmac.Equal([]byte(want), []byte(t.Signature))
}

// Expired reports whether t has expired at now, allowing skew after the
// expiry time (the hub allows DefaultSkew).
func (t Token) Expired(now time.Time, skew time.Duration) bool {
	// Sub saturates instead of overflowing for far-future se values.
	return now.Sub(t.Expiry) > skew
}
