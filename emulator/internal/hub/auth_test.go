// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// regToken signs a token valid until expiry.
func regToken(t *testing.T, resource, keyName, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.NewToken(resource, keyName, key, expiry)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// wantAuthErr fails unless err is an authentication failure with the
// catalogue code.
func wantAuthErr(t *testing.T, err error, code int) {
	t.Helper()
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v, want an ErrAuth failure", err)
	}
	// Adapters log this error: one line, or a text log shows a literal \n.
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "not authorized: ") {
		t.Errorf("error %q, want one line starting %q", msg, "not authorized: ")
	}
	wantCode(t, "auth", err, code)
}

func TestAuthenticateDeviceSAS(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	const host = "myhub.example"
	d1 := regDevice(t, h, Device{DeviceID: "d1"})
	regDevice(t, h, Device{DeviceID: "d2"})
	regDevice(t, h, Device{DeviceID: "off", Status: StatusDisabled})
	off, _ := h.GetDevice(ctx, "off")
	m1, err := h.PutModule(ctx, &Module{DeviceID: "d1", ModuleID: "m1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PutModule(ctx, &Module{DeviceID: "off", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PutDevice(ctx, &Device{DeviceID: "x5", Authentication: Authentication{Type: AuthCA}}, ""); err != nil {
		t.Fatal(err)
	}
	devPol, _ := h.Policy("device")
	svcPol, _ := h.Policy("service")
	owner, _ := h.Policy(OwnerPolicy)
	later := regNow.Add(time.Hour)
	dk := d1.Authentication.SymmetricKey
	mk := m1.Authentication.SymmetricKey

	tests := []struct {
		name  string
		id    Identity
		token string
		ok    bool
	}{
		{"device primary key", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "", dk.PrimaryKey, later), true},
		{"device secondary key", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "", dk.SecondaryKey, later), true},
		{"host in upper case", Identity{DeviceID: "d1"}, regToken(t, "MYHUB.example/devices/d1", "", dk.PrimaryKey, later), true},
		{"module key", Identity{DeviceID: "d1", ModuleID: "m1"}, regToken(t, host+"/devices/d1/modules/m1", "", mk.PrimaryKey, later), true},
		{"device policy on the device", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "device", devPol.PrimaryKey, later), true},
		{"device policy secondary key", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "device", devPol.SecondaryKey, later), true},
		{"owner policy has DeviceConnect", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", OwnerPolicy, owner.PrimaryKey, later), true},
		{"device policy on all devices", Identity{DeviceID: "d1"}, regToken(t, host+"/devices", "device", devPol.PrimaryKey, later), true},
		{"device policy on a module", Identity{DeviceID: "d1", ModuleID: "m1"}, regToken(t, host+"/devices/d1", "device", devPol.PrimaryKey, later), true},
		{"expired within skew", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "", dk.PrimaryKey, regNow.Add(-4*time.Minute)), true},

		{"expired beyond skew", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "", dk.PrimaryKey, regNow.Add(-6*time.Minute)), false},
		{"another device's token", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d2", "", dk.PrimaryKey, later), false},
		{"id prefix is not a path segment", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d", "", dk.PrimaryKey, later), false},
		{"wrong key", Identity{DeviceID: "d2"}, regToken(t, host+"/devices/d2", "", dk.PrimaryKey, later), false},
		{"wrong host", Identity{DeviceID: "d1"}, regToken(t, "other.example/devices/d1", "", dk.PrimaryKey, later), false},
		{"module token for the device", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1/modules/m1", "", mk.PrimaryKey, later), false},
		{"device key for the module", Identity{DeviceID: "d1", ModuleID: "m1"}, regToken(t, host+"/devices/d1", "", dk.PrimaryKey, later), false},
		{"policy without DeviceConnect", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "service", svcPol.PrimaryKey, later), false},
		{"policy name with another policy's key", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "device", svcPol.PrimaryKey, later), false},
		{"unknown policy", Identity{DeviceID: "d1"}, regToken(t, host+"/devices/d1", "nobody", devPol.PrimaryKey, later), false},
		{"unknown device", Identity{DeviceID: "ghost"}, regToken(t, host+"/devices/ghost", "device", devPol.PrimaryKey, later), false},
		{"unknown module", Identity{DeviceID: "d1", ModuleID: "ghost"}, regToken(t, host+"/devices/d1", "device", devPol.PrimaryKey, later), false},
		{"disabled device", Identity{DeviceID: "off"}, regToken(t, host+"/devices/off", "", off.Authentication.SymmetricKey.PrimaryKey, later), false},
		{"module of a disabled device", Identity{DeviceID: "off", ModuleID: "m1"}, regToken(t, host+"/devices/off", "device", devPol.PrimaryKey, later), false},
		{"key token for a CA device", Identity{DeviceID: "x5"}, regToken(t, host+"/devices/x5", "", dk.PrimaryKey, later), false},
		{"not a token", Identity{DeviceID: "d1"}, "password", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.AuthenticateDevice(tc.id, tc.token, nil)
			if !tc.ok {
				wantAuthErr(t, err, 401003)
				return
			}
			if err != nil {
				t.Fatalf("AuthenticateDevice: %v", err)
			}
			tok, _ := sas.ParseToken(tc.token)
			if got.Method != "sas" || !got.Expiry.Equal(tok.Expiry) {
				t.Errorf("got %+v, want sas expiring %v", got, tok.Expiry)
			}
		})
	}
	t.Run("no credentials", func(t *testing.T) {
		_, err := h.AuthenticateDevice(Identity{DeviceID: "d1"}, "", nil)
		wantAuthErr(t, err, 401003)
	})
}

func TestAuthenticateDeviceClock(t *testing.T) {
	h := newRegHub(t)
	d := regDevice(t, h, Device{DeviceID: "d1"})
	tok := regToken(t, "myhub.example/devices/d1", "", d.Authentication.SymmetricKey.PrimaryKey, regNow)
	if _, err := h.AuthenticateDevice(Identity{DeviceID: "d1"}, tok, nil); err != nil {
		t.Fatalf("at expiry: %v", err)
	}
	h.Clock().SetFunc(func() time.Time { return regNow.Add(ClockSkew) })
	if _, err := h.AuthenticateDevice(Identity{DeviceID: "d1"}, tok, nil); err != nil {
		t.Fatalf("at expiry + skew: %v", err)
	}
	h.Clock().SetFunc(func() time.Time { return regNow.Add(ClockSkew + time.Second) })
	_, err := h.AuthenticateDevice(Identity{DeviceID: "d1"}, tok, nil)
	wantAuthErr(t, err, 401003)
}

func TestAuthorizeService(t *testing.T) {
	h := newRegHub(t)
	later := regNow.Add(time.Hour)
	key := func(name string) string { p, _ := h.Policy(name); return p.PrimaryKey }
	tests := []struct {
		name   string
		header string
		need   Rights
		policy string // "" when refused
	}{
		{"owner reads", regToken(t, "myhub.example", OwnerPolicy, key(OwnerPolicy), later), RegistryRead, OwnerPolicy},
		{"registryReadWrite writes", regToken(t, "myhub.example", "registryReadWrite", key("registryReadWrite"), later), RegistryWrite, "registryReadWrite"},
		{"registryRead cannot write", regToken(t, "myhub.example", "registryRead", key("registryRead"), later), RegistryWrite, ""},
		{"service needs both rights", regToken(t, "myhub.example", "service", key("service"), later), ServiceConnect | RegistryRead, ""},
		{"host with a port", regToken(t, "myhub.example:443", "service", key("service"), later), ServiceConnect, "service"},
		{"no skn", regToken(t, "myhub.example", "", key("service"), later), ServiceConnect, ""},
		{"empty", "", ServiceConnect, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := h.AuthorizeService(tc.header, tc.need)
			if tc.policy == "" {
				wantAuthErr(t, err, 401002)
				return
			}
			if err != nil {
				t.Fatalf("AuthorizeService: %v", err)
			}
			if c.Policy != tc.policy {
				t.Errorf("got policy %q, want %q", c.Policy, tc.policy)
			}
		})
	}
}

// leafAt returns a certificate for cn valid an hour either side of regNow,
// signed by ca (self-signed when ca is nil).
func leafAt(t *testing.T, cn string, ca *testutil.CA) *x509.Certificate {
	t.Helper()
	var c tls.Certificate
	var err error
	if ca == nil {
		c, err = testutil.SelfSignedAt(cn, regNow.Add(-time.Hour), regNow.Add(time.Hour))
	} else {
		c, err = ca.IssueAt(cn, regNow.Add(-time.Hour), regNow.Add(time.Hour))
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestAuthenticateDeviceX509(t *testing.T) {
	testCA := testutil.FixedCA()
	ca, pool := testCA.Cert, testCA.Pool
	leaf := leafAt(t, "cadev", testCA)
	wrongCN := leafAt(t, "someone", testCA)
	selfCert := leafAt(t, "selfdev", nil)
	otherSelf := leafAt(t, "selfdev", nil)
	thumb := testutil.Thumbprint(tls.Certificate{Certificate: [][]byte{selfCert.Raw}})

	h := newRegHub(t)
	h.cfg.DeviceCAs = pool
	ctx := context.Background()
	if _, err := h.PutDevice(ctx, &Device{DeviceID: "cadev", Authentication: Authentication{Type: AuthCA}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PutDevice(ctx, &Device{DeviceID: "selfdev", Authentication: Authentication{Type: AuthSelfSigned,
		X509Thumbprint: &X509Thumbprint{SecondaryThumbprint: &thumb}}}, ""); err != nil {
		t.Fatal(err)
	}
	regDevice(t, h, Device{DeviceID: "sasdev"})

	tests := []struct {
		name  string
		id    string
		chain []*x509.Certificate
		ok    bool
	}{
		{"CA-signed leaf", "cadev", []*x509.Certificate{leaf, ca}, true},
		{"CA-signed leaf without the CA in the chain", "cadev", []*x509.Certificate{leaf}, true},
		{"CA-signed leaf with another name", "cadev", []*x509.Certificate{wrongCN}, false},
		{"self-signed cert on a CA device", "cadev", []*x509.Certificate{selfCert}, false},
		{"registered thumbprint", "selfdev", []*x509.Certificate{selfCert}, true},
		{"other thumbprint", "selfdev", []*x509.Certificate{otherSelf}, false},
		{"certificate on a SAS device", "sasdev", []*x509.Certificate{selfCert}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.AuthenticateDevice(Identity{DeviceID: tc.id}, "", tc.chain)
			if !tc.ok {
				wantAuthErr(t, err, 401003)
				return
			}
			if err != nil || got.Method != "x509" {
				t.Fatalf("got %+v, %v, want x509 success", got, err)
			}
		})
	}
	t.Run("expired certificate", func(t *testing.T) {
		h.Clock().SetFunc(func() time.Time { return regNow.Add(2 * time.Hour) })
		defer h.Clock().SetFunc(func() time.Time { return regNow })
		_, err := h.AuthenticateDevice(Identity{DeviceID: "selfdev"}, "", []*x509.Certificate{selfCert})
		wantAuthErr(t, err, 401003)
	})
}
