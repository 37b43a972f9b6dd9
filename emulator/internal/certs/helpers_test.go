// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// handshake runs one TLS handshake over 127.0.0.1 between a server using
// serverCfg and a client using clientCfg. It returns nil only when both
// sides accepted, and the certificates the server saw from the client.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (peer []*x509.Certificate, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()

	peers := make(chan []*x509.Certificate, 1)
	go func() {
		defer close(peers)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, serverCfg)
		if tc.Handshake() != nil {
			return
		}
		peers <- tc.ConnectionState().PeerCertificates
		_, _ = tc.Write([]byte{'k'}) // tells the client the server accepted
	}()

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(conn, clientCfg)
	if err = tc.Handshake(); err == nil {
		// Under TLS 1.3 the client's handshake ends before the server has
		// judged the client certificate; the server's byte or alert tells.
		_, err = tc.Read(make([]byte, 1))
	}
	conn.Close()

	select {
	case peer = <-peers:
	case <-time.After(10 * time.Second):
		t.Fatal("server handshake did not finish")
	}
	return peer, err
}

// readFiles returns the contents of the named files in dir.
func readFiles(t *testing.T, dir string, names ...string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		m[n] = b
	}
	return m
}

// mustEnsure calls Ensure and fails the test on error.
func mustEnsure(t *testing.T, dir string, hosts []string, now time.Time) *Material {
	t.Helper()
	m, err := Ensure(dir, hosts, now)
	if err != nil {
		t.Fatalf("Ensure(%q, %v): %v", dir, hosts, err)
	}
	return m
}
