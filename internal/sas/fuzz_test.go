// SPDX-License-Identifier: MIT

package sas

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		vectorDevice, vectorService,
		"SharedAccessSignature sr=h&sig=a+b%2&se=1",
		"SharedAccessSignature SR=h&&se=007&sig=%41&skn=x%2Fy&foo",
		"SharedAccessSignature  sr=h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil {
			t.Fatalf("ParseToken(%q) ok but reparsing its String() %q: %v", s, tok.String(), err)
		}
		if diff := cmp.Diff(tok, again); diff != "" {
			t.Errorf("String round trip changed the token (-first +second):\n%s", diff)
		}
		tok.Verify(vectorKey)
		tok.Covers("h/devices/d")
	})
}

func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{
		"HostName=h.net;DeviceId=dev1;SharedAccessKey=" + csKey,
		"HostName=h.net;DeviceId=dev1;ModuleId=m;SharedAccessSignature=" + vectorDevice + ";GatewayHostName=g",
		"hostname=h;SharedAccessKeyName=p;sharedaccesskey=k;HOSTNAME=x",
		"HostName=h;DeviceId=d;x509=TRUE;;=;a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil {
			return
		}
		again, err := ParseConnectionString(c.String())
		if err != nil {
			t.Fatalf("ParseConnectionString(%q) ok but reparsing its String() %q: %v", s, c.String(), err)
		}
		if diff := cmp.Diff(c, again); diff != "" {
			t.Errorf("String round trip changed the connection string (-first +second):\n%s", diff)
		}
		if c.Kind() == KindUnknown {
			t.Errorf("valid connection string %q has Kind unknown", s)
		}
	})
}
