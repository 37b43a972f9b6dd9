// SPDX-License-Identifier: MIT

package wire

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:443": true, "127.0.0.1": true, "127.0.0.2:8883": true, "[::1]:443": true, "::1": true,
		"hub.localhost": true, "myhub.azure-devices.net": false, "iothub": false, "10.0.0.5:443": false, "": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	emulatorCert := &x509.Certificate{Issuer: pkix.Name{Organization: []string{EmulatorOrganization}}}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		host string
		want bool
	}{
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: emulatorCert}}, "localhost", true},
		{"wrong host name", fmt.Errorf("get: %w", x509.HostnameError{Certificate: emulatorCert, Host: "hub"}), "hub", true},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, "hub", true},
		{"name not found", &net.DNSError{Err: "no such host", Name: "nowhere", IsNotFound: true}, "nowhere", true},
		{"resolver unreachable", &net.DNSError{Err: "i/o timeout", Name: "hub", IsTimeout: true}, "hub", false},
		{"refused elsewhere", refused, "hub.example:443", true},
		{"refused here", refused, "localhost:443", false},
		{"reset", &net.OpError{Err: syscall.ECONNRESET}, "hub.example", false},
		{"other", errors.New("EOF"), "hub.example", false},
	}
	for _, tt := range tests {
		if got := Deterministic(tt.err, tt.host); got != tt.want {
			t.Errorf("%s: Deterministic = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExplainTLS(t *testing.T) {
	emulatorCert := &x509.Certificate{Issuer: pkix.Name{Organization: []string{EmulatorOrganization}}}
	otherCert := &x509.Certificate{Issuer: pkix.Name{Organization: []string{"Contoso"}}}
	tests := []struct {
		name string
		err  error
		want []string // nil: returned unchanged
	}{
		{"emulator CA", fmt.Errorf("op: %w", &tls.CertificateVerificationError{UnverifiedCertificates: []*x509.Certificate{emulatorCert}, Err: x509.UnknownAuthorityError{Cert: emulatorCert}}),
			[]string{"op: ", "this is the IoT Hub emulator, whose CA is not trusted: OPTION; ", "https://localhost:8443/emulator/ca.pem"}},
		{"another CA", x509.UnknownAuthorityError{Cert: otherCert},
			[]string{"not signed by a CA this client trusts; if this is the IoT Hub emulator, OPTION"}},
		{"host name", x509.HostnameError{Certificate: emulatorCert, Host: "hub"}, []string{"does not name localhost", "--tls-san"}},
		{"not a certificate error", errors.New("EOF"), nil},
	}
	for _, tt := range tests {
		got := ExplainTLS(tt.err, "localhost:8443", "OPTION")
		if tt.want == nil {
			if got != tt.err {
				t.Errorf("%s: got %v, want the error unchanged", tt.name, got)
			}
			continue
		}
		var ce *CertificateError
		if !errors.As(got, &ce) || !errors.Is(got, tt.err) {
			t.Errorf("%s: got %#v, want a *CertificateError wrapping the error", tt.name, got)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, got, w)
			}
		}
		if again := ExplainTLS(got, "localhost", "X"); again != got {
			t.Errorf("%s: explained twice", tt.name)
		}
	}
}
