// SPDX-License-Identifier: MIT

package wire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"
)

// EmulatorOrganization is the organisation in the subject of the IoT Hub
// emulator's generated CA and server certificates, by which a client tells
// that an untrusted certificate is the emulator's.
const EmulatorOrganization = "IoT Hub Emulator"

// CertificateError is a failure to verify the hub's TLS certificate, with
// what to do about it. It wraps the whole error of the failed call, so
// errors.As still finds the *tls.CertificateVerificationError or x509
// error inside.
type CertificateError struct {
	Err      error  // the call's error
	Host     string // the host the client connected to, possibly with a port
	Emulator bool   // the certificate was issued by the IoT Hub emulator's CA
	Hostname bool   // the certificate is valid, but not for Host
	// Option says how this client is told to trust a CA, e.g.
	// "service.WithRootCAs"; a tool may replace it with its own flag.
	Option string
}

func (e *CertificateError) Unwrap() error { return e.Err }

// Error is the call's error followed by the advice.
func (e *CertificateError) Error() string { return e.Err.Error() + ": " + e.Advice() }

// Advice says what to do.
func (e *CertificateError) Advice() string {
	host := e.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if e.Hostname {
		return "the certificate does not name " + host + "; connect by a name it holds, or, for the emulator, " +
			"add the name with --tls-san (IOTHUB_TLS_SANS) and restart it"
	}
	where := "the emulator writes its CA to ca.pem in its data dir (iothub-data/ca.pem by default, /data/ca.pem in its container) " +
		"and serves it at https://" + e.Host + "/emulator/ca.pem"
	if e.Emulator {
		return "this is the IoT Hub emulator, whose CA is not trusted: " + e.Option + "; " + where
	}
	return "the certificate is not signed by a CA this client trusts; if this is the IoT Hub emulator, " + e.Option + "; " + where
}

// ExplainTLS returns err as a *CertificateError when it is a failure to
// verify the certificate of host, and err itself otherwise. option is how
// the client's user trusts a CA.
func ExplainTLS(err error, host, option string) error {
	var ce *CertificateError
	if err == nil || errors.As(err, &ce) {
		return err
	}
	var (
		verr    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	e := &CertificateError{Err: err, Host: host, Option: option}
	switch {
	case errors.As(err, &hostErr):
		e.Hostname = true
		e.Emulator = issuedByEmulator(hostErr.Certificate)
	case errors.As(err, &unknown):
		e.Emulator = issuedByEmulator(unknown.Cert)
	default:
		return err
	}
	if errors.As(err, &verr) && len(verr.UnverifiedCertificates) > 0 {
		e.Emulator = e.Emulator || issuedByEmulator(verr.UnverifiedCertificates[0])
	}
	return e
}

func issuedByEmulator(c *x509.Certificate) bool {
	if c == nil {
		return false
	}
	for _, o := range c.Issuer.Organization {
		if o == EmulatorOrganization {
			return true
		}
	}
	return false
}

// Deterministic reports whether a call that failed with err, against host,
// would fail the same way if repeated at once, so that retrying only
// delays the error: the hub's certificate cannot be verified, its name
// does not resolve, or nothing listens at a host that is not this machine.
// A refused connection to a loopback address is not deterministic: an
// emulator there may be starting.
func Deterministic(err error, host string) bool {
	var dnsErr *net.DNSError
	switch {
	case IsCertificateError(err):
		return true
	case errors.As(err, &dnsErr):
		return dnsErr.IsNotFound
	case errors.Is(err, syscall.ECONNREFUSED):
		return !IsLoopback(host)
	}
	return false
}

// IsCertificateError reports whether err is a failure to verify the
// peer's certificate.
func IsCertificateError(err error) bool {
	var (
		verr    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid)
}

// IsLoopback reports whether host (with or without a port) names this
// machine: localhost or a loopback address.
func IsLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
