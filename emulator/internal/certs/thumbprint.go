// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// Thumbprint returns the SHA-1 hash of cert's DER encoding in upper-case hex
// without separators, the form the hub shows and stores for x509 devices.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// ThumbprintSHA256 returns the SHA-256 hash of cert's DER encoding in
// upper-case hex; the hub accepts either hash as a device thumbprint.
func ThumbprintSHA256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
