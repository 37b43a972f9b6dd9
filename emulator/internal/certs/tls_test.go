// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestServerHandshake(t *testing.T) {
	m := mustEnsure(t, t.TempDir(), []string{"hub.local"}, time.Now())
	serverCfg := &tls.Config{Certificates: []tls.Certificate{m.Server}}
	tests := []struct {
		name       string
		serverName string
		maxVersion uint16
		wantOK     bool
	}{
		{"localhost", "localhost", 0, true},
		{"extra host", "hub.local", 0, true},
		{"IPv4", "127.0.0.1", 0, true},
		{"IPv6", "::1", 0, true},
		{"TLS 1.2", "localhost", tls.VersionTLS12, true},
		{"unknown name", "elsewhere.example", 0, false},
		{"unknown IP", "10.9.9.9", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCfg := &tls.Config{RootCAs: m.Pool, ServerName: tt.serverName, MaxVersion: tt.maxVersion}
			_, err := handshake(t, serverCfg, clientCfg)
			if (err == nil) != tt.wantOK {
				t.Errorf("handshake error = %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func TestServerHandshakeUntrusted(t *testing.T) {
	m := mustEnsure(t, t.TempDir(), nil, time.Now())
	other := mustEnsure(t, t.TempDir(), nil, time.Now())
	_, err := handshake(t,
		&tls.Config{Certificates: []tls.Certificate{m.Server}},
		&tls.Config{RootCAs: other.Pool, ServerName: "localhost"})
	if err == nil {
		t.Errorf("handshake trusting another emulator's CA succeeded, want failure")
	}
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	m := mustEnsure(t, t.TempDir(), nil, now)
	deviceCA, err := NewCA("device CA", now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	issued, err := deviceCA.Issue("dev-ca", now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	self, err := SelfSigned("dev-self", now)
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(deviceCA.CertPEM())

	// The hub asks for any certificate and judges it itself (thumbprint or
	// CA chain); RequireAndVerifyClientCert checks the CA path in TLS.
	anyCert := &tls.Config{Certificates: []tls.Certificate{m.Server}, ClientAuth: tls.RequireAnyClientCert}
	verifyCA := &tls.Config{Certificates: []tls.Certificate{m.Server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: caPool}

	tests := []struct {
		name       string
		server     *tls.Config
		client     tls.Certificate
		wantOK     bool
		wantCN     string
		wantThumb  string
		wantChainN int
	}{
		{"CA-issued, any cert", anyCert, issued, true, "dev-ca", Thumbprint(issued.Leaf), 2},
		{"CA-issued, verified", verifyCA, issued, true, "dev-ca", Thumbprint(issued.Leaf), 2},
		{"self-signed, any cert", anyCert, self, true, "dev-self", Thumbprint(self.Leaf), 1},
		{"self-signed, verified", verifyCA, self, false, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCfg := &tls.Config{RootCAs: m.Pool, ServerName: "localhost", Certificates: []tls.Certificate{tt.client}}
			peer, err := handshake(t, tt.server, clientCfg)
			if (err == nil) != tt.wantOK {
				t.Fatalf("handshake error = %v, want success %v", err, tt.wantOK)
			}
			if !tt.wantOK {
				return
			}
			if len(peer) != tt.wantChainN {
				t.Fatalf("server saw %d client certificates, want %d", len(peer), tt.wantChainN)
			}
			if got := peer[0].Subject.CommonName; got != tt.wantCN {
				t.Errorf("client CN = %q, want %q", got, tt.wantCN)
			}
			if got := Thumbprint(peer[0]); got != tt.wantThumb {
				t.Errorf("client thumbprint = %s, want %s", got, tt.wantThumb)
			}
		})
	}
}
