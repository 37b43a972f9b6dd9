// SPDX-License-Identifier: MIT

// Package certs provides the emulator's TLS material: a local CA and a server
// certificate that Go, Node.js and Python TLS clients accept, user-supplied
// certificate loading, and helpers that mint device certificates for X.509
// authentication tests.
//
// Everything uses ECDSA P-256 keys. Certificates are backdated by an hour so
// clients with a slightly slow clock accept them at once.
//
// Quick start:
//
//	m, err := certs.Ensure(dir, []string{"myhub.local"}, time.Now())
//	srv := &tls.Config{Certificates: []tls.Certificate{m.Server}} // clients trust m.CAFile or m.Pool
package certs
