// SPDX-License-Identifier: MIT

package sas

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Test vectors from docs/iothub-protocol.md §2.2, computed with the Node SDK.
const (
	vectorKey     = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64("0123456789abcdef0123456789abcdef")
	vectorHost    = "myhub.azure-devices.net"
	vectorDevice  = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig=wosmA3uJK9T0mdB5CIYn%2BsAVA2ODflnucuvNO5S6mbM%3D&se=1700000000"
	vectorService = "SharedAccessSignature sr=myhub.azure-devices.net&sig=sJAIZTF5oG40VHrie96heZ865%2BnR4QavBvHnzxZm8rk%3D&skn=iothubowner&se=1700000000"
)

var vectorExpiry = time.Unix(1700000000, 0)

func TestNewTokenVectors(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		keyName  string
		want     string
	}{
		{"device", ResourceURI(vectorHost, "dev1", ""), "", vectorDevice},
		{"service", ResourceURI(vectorHost, "", ""), "iothubowner", vectorService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewToken(tt.resource, tt.keyName, vectorKey, vectorExpiry)
			if err != nil {
				t.Fatalf("NewToken: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseTokenVectors(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  Token
	}{
		{"device", vectorDevice, Token{
			RawResource: "myhub.azure-devices.net%2Fdevices%2Fdev1",
			Resource:    "myhub.azure-devices.net/devices/dev1",
			Signature:   "wosmA3uJK9T0mdB5CIYn+sAVA2ODflnucuvNO5S6mbM=",
			RawExpiry:   "1700000000",
			Expiry:      vectorExpiry.UTC(),
		}},
		{"service", vectorService, Token{
			RawResource: "myhub.azure-devices.net",
			Resource:    "myhub.azure-devices.net",
			Signature:   "sJAIZTF5oG40VHrie96heZ865+nR4QavBvHnzxZm8rk=",
			RawExpiry:   "1700000000",
			Expiry:      vectorExpiry.UTC(),
			KeyName:     "iothubowner",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.token)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseToken mismatch (-want +got):\n%s", diff)
			}
			if !got.Verify(vectorKey) {
				t.Errorf("Verify(vector key) = false, want true")
			}
			if s := got.String(); s != tt.token {
				t.Errorf("String() = %s, want %s", s, tt.token)
			}
		})
	}
}

func TestNewTokenEncoding(t *testing.T) {
	// Node's encodeUriComponentStrict keeps A-Z a-z 0-9 -_.~, escapes !'()*
	// with lower-case hex and everything else with upper-case hex.
	tok, err := NewToken("h.net/devices/a+b c!'()*~-_.%#?:=@$,é", "pol/x", vectorKey, vectorExpiry)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", tok, err)
	}
	wantRaw := "h.net%2Fdevices%2Fa%2Bb%20c%21%27%28%29%2a~-_.%25%23%3F%3A%3D%40%24%2C%C3%A9"
	if p.RawResource != wantRaw {
		t.Errorf("sr = %s, want %s", p.RawResource, wantRaw)
	}
	if want := "h.net/devices/a+b c!'()*~-_.%#?:=@$,é"; p.Resource != want {
		t.Errorf("Resource = %q, want %q", p.Resource, want)
	}
	if !strings.Contains(tok, "&skn=pol%2Fx&") || p.KeyName != "pol/x" {
		t.Errorf("skn: token %s, KeyName %q; want skn=pol%%2Fx and KeyName pol/x", tok, p.KeyName)
	}
	if !p.Verify(vectorKey) {
		t.Errorf("Verify = false, want true")
	}
}

func TestNewTokenErrors(t *testing.T) {
	tests := []struct {
		name, resource, key string
	}{
		{"empty resource", "", vectorKey},
		{"empty key", "h", ""},
		{"bad key", "h", "not base64!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := NewToken(tt.resource, "", tt.key, vectorExpiry); err == nil {
				t.Errorf("NewToken = %q, nil; want error", got)
			}
		})
	}
}

func TestVerifyOtherSigners(t *testing.T) {
	// Other SDKs escape differently (C# WebUtility.UrlEncode emits lower-case
	// %2f; a hand-made token may not escape at all). The signature covers sr
	// as sent, so each verifies against its own text.
	key := []byte("0123456789abcdef0123456789abcdef")
	for _, sr := range []string{
		"myhub.azure-devices.net%2fdevices%2fdev1",
		"myhub.azure-devices.net/devices/dev1",
	} {
		t.Run(sr, func(t *testing.T) {
			sig := sign(key, sr+"\n1700000000")
			tok := "SharedAccessSignature se=1700000000&sr=" + sr + "&sig=" + encodeComponent(sig)
			p, err := ParseToken(tok)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if !p.Verify(vectorKey) {
				t.Errorf("Verify = false, want true")
			}
			if want := "myhub.azure-devices.net/devices/dev1"; p.Resource != want {
				t.Errorf("Resource = %q, want %q", p.Resource, want)
			}
		})
	}
}

func TestVerifyTampering(t *testing.T) {
	otherKey := GenerateKey()
	tests := []struct {
		name  string
		token string
		key   string
		want  bool
	}{
		{"original", vectorDevice, vectorKey, true},
		{"other key", vectorDevice, otherKey, false},
		{"invalid key", vectorDevice, "%%%", false},
		{"sr changed", strings.Replace(vectorDevice, "dev1", "dev2", 1), vectorKey, false},
		{"sr escape case changed", strings.Replace(vectorDevice, "%2Fdevices", "%2fdevices", 1), vectorKey, false},
		{"se changed", strings.Replace(vectorDevice, "se=1700000000", "se=1700000001", 1), vectorKey, false},
		{"sig changed", strings.Replace(vectorDevice, "sig=w", "sig=x", 1), vectorKey, false},
		{"sig truncated", strings.Replace(vectorDevice, "%3D&", "&", 1), vectorKey, false},
		{"skn added", vectorDevice + "&skn=device", vectorKey, true}, // skn is not signed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseToken(tt.token)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if got := p.Verify(tt.key); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTokenAccepts(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  Token
	}{
		{
			name:  "any field order, unknown field, stray separators",
			token: "SharedAccessSignature &se=5&foo=bar&&sig=abc&sr=h%2Fdevices%2Fd&",
			want:  Token{RawResource: "h%2Fdevices%2Fd", Resource: "h/devices/d", Signature: "abc", RawExpiry: "5", Expiry: time.Unix(5, 0).UTC()},
		},
		{
			name:  "field names case-insensitive",
			token: "SharedAccessSignature SR=h&SIG=abc&Se=0010&SKN=p",
			want:  Token{RawResource: "h", Resource: "h", Signature: "abc", RawExpiry: "0010", Expiry: time.Unix(10, 0).UTC(), KeyName: "p"},
		},
		{
			name:  "unescaped plus in sig stays a plus",
			token: "SharedAccessSignature sr=h&sig=a+b=&se=1",
			want:  Token{RawResource: "h", Resource: "h", Signature: "a+b=", RawExpiry: "1", Expiry: time.Unix(1, 0).UTC()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.token)
			if err != nil {
				t.Fatalf("ParseToken: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseToken mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{"empty", "", "does not start with"},
		{"no prefix", "sr=h&sig=a&se=1", "does not start with"},
		{"lower-case prefix", "sharedaccesssignature sr=h&sig=a&se=1", "does not start with"},
		{"two spaces", "SharedAccessSignature  sr=h&sig=a&se=1", "whitespace"},
		{"inner space", "SharedAccessSignature sr=h&sig=a &se=1", "whitespace"},
		{"trailing newline", "SharedAccessSignature sr=h&sig=a&se=1\n", "whitespace"},
		{"missing sr", "SharedAccessSignature sig=a&se=1", "missing sr"},
		{"missing sig", "SharedAccessSignature sr=h&se=1", "missing sig"},
		{"missing se", "SharedAccessSignature sr=h&sig=a", "missing se"},
		{"empty sr", "SharedAccessSignature sr=&sig=a&se=1", "missing sr"},
		{"duplicate sr", "SharedAccessSignature sr=h&sig=a&se=1&sr=h", "sr appears more than once"},
		{"duplicate with other case", "SharedAccessSignature sr=h&sig=a&se=1&SE=2", "se appears more than once"},
		{"field without equals", "SharedAccessSignature sr=h&sig=a&se=1&junk", `"junk" has no '='`},
		{"fractional se", "SharedAccessSignature sr=h&sig=a&se=1.5", "not an integer"},
		{"negative se", "SharedAccessSignature sr=h&sig=a&se=-1", "not an integer"},
		{"huge se", "SharedAccessSignature sr=h&sig=a&se=99999999999999999999", "out of range"},
		{"se after year 9999", "SharedAccessSignature sr=h&sig=a&se=253402300800", "out of range"},
		{"bad escape in sr", "SharedAccessSignature sr=h%2&sig=a&se=1", "sr is not URL-encoded"},
		{"bad escape in sig", "SharedAccessSignature sr=h&sig=a%zz&se=1", "sig is not URL-encoded"},
		{"bad escape in skn", "SharedAccessSignature sr=h&sig=a&se=1&skn=%", "skn is not URL-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.token)
			if err == nil {
				t.Fatalf("ParseToken(%q) = %+v, nil; want error containing %q", tt.token, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseToken(%q) error = %q, want it to contain %q", tt.token, err, tt.wantErr)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	tok := Token{Expiry: vectorExpiry}
	tests := []struct {
		name string
		now  time.Time
		skew time.Duration
		want bool
	}{
		{"before expiry", vectorExpiry.Add(-time.Second), 0, false},
		{"at expiry", vectorExpiry, 0, false},
		{"just after expiry", vectorExpiry.Add(time.Nanosecond), 0, true},
		{"within skew", vectorExpiry.Add(DefaultSkew), DefaultSkew, false},
		{"beyond skew", vectorExpiry.Add(DefaultSkew + time.Second), DefaultSkew, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.Expired(tt.now, tt.skew); got != tt.want {
				t.Errorf("Expired(%v, %v) = %v, want %v", tt.now, tt.skew, got, tt.want)
			}
		})
	}
}

func TestExpiredExtremes(t *testing.T) {
	far, err := ParseToken("SharedAccessSignature sr=h&sig=a&se=253402300799")
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if far.Expired(time.Now(), DefaultSkew) {
		t.Errorf("token with se=year 9999: Expired = true, want false")
	}
	zero, err := ParseToken("SharedAccessSignature sr=h&sig=a&se=0")
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if !zero.Expired(time.Now(), DefaultSkew) {
		t.Errorf("token with se=0: Expired = false, want true")
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if a == b {
		t.Errorf("two GenerateKey calls returned the same key %s", a)
	}
	k, err := decodeKey(a)
	if err != nil {
		t.Fatalf("decodeKey(%q): %v", a, err)
	}
	if len(k) != 32 {
		t.Errorf("key length = %d bytes, want 32", len(k))
	}
	tok, err := NewToken("h/devices/d", "", a, vectorExpiry)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if !p.Verify(a) || p.Verify(b) {
		t.Errorf("Verify(own key) = %v, Verify(other key) = %v; want true, false", p.Verify(a), p.Verify(b))
	}
}

func TestUnpaddedKey(t *testing.T) {
	unpadded := strings.TrimRight(vectorKey, "=")
	got, err := NewToken(ResourceURI(vectorHost, "dev1", ""), "", unpadded, vectorExpiry)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	if got != vectorDevice {
		t.Errorf("got %s, want %s", got, vectorDevice)
	}
}

func BenchmarkVerify(b *testing.B) {
	p, err := ParseToken(vectorDevice)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p.Verify(vectorKey)
	}
}

// TestVerifyKeyText: Event Hubs clients HMAC with the key's text, not its
// base64-decoded bytes, over their lower-cased escaped audience (vector
// computed with Python's hmac module).
func TestVerifyKeyText(t *testing.T) {
	const key = "SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE="
	tok, err := ParseToken("SharedAccessSignature sr=amqps%3a%2f%2flocalhost%2flocalhost%2f%24management&sig=t11NEwp4tZr4FFalo6IZ4zhJb0e7AfOqT5pdTSHCNek%3D&se=1700000000&skn=iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	if !tok.VerifyKeyText(key) {
		t.Error("VerifyKeyText = false, want true")
	}
	if tok.Verify(key) {
		t.Error("Verify (decoded key) = true for a token signed with the key's text")
	}
	if tok.VerifyKeyText(GenerateKey()) || tok.VerifyKeyText("") {
		t.Error("VerifyKeyText accepts another key")
	}
	if want := "amqps://localhost/localhost/$management"; tok.Resource != want {
		t.Errorf("Resource = %q, want %q", tok.Resource, want)
	}
}
