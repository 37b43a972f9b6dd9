// SPDX-License-Identifier: MIT

package sas

import (
	"testing"
	"time"
)

// TestDeriveDeviceKey checks the derivation against the worked example of
// the DPS documentation ("How to provision devices using symmetric key
// enrollment groups").
func TestDeriveDeviceKey(t *testing.T) {
	got, err := DeriveDeviceKey("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==", "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="; got != want {
		t.Errorf("DeriveDeviceKey: got %q, want %q", got, want)
	}
	if _, err := DeriveDeviceKey("not base64!", "x"); err == nil {
		t.Error("DeriveDeviceKey with a key that is not base64: no error")
	}
}

// TestRegistrationToken mints a registration token as the Node SDK does
// (resource encoded with %2F, skn=registration) and verifies it.
func TestRegistrationToken(t *testing.T) {
	key := GenerateKey()
	exp := time.Unix(1700000000, 0)
	tok, err := NewToken(RegistrationResource("0ne00000E11", "dev-1"), RegistrationKeyName, key, exp)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.RawResource != "0ne00000E11%2Fregistrations%2Fdev-1" || p.Resource != "0ne00000E11/registrations/dev-1" {
		t.Errorf("resource: got raw %q decoded %q", p.RawResource, p.Resource)
	}
	if p.KeyName != "registration" || !p.Verify(key) {
		t.Errorf("token %q: skn %q, verifies %v", tok, p.KeyName, p.Verify(key))
	}
}
