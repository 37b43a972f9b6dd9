// SPDX-License-Identifier: MIT

package certs

import (
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
)

// defaultHosts are always in the server certificate so local clients can
// connect by name or loopback address without extra configuration.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// sanSet is a normalised set of subject alternative names: lower-case DNS
// names and canonical IP strings, each sorted and without duplicates, so two
// sets compare with slices.Equal.
type sanSet struct {
	dns []string
	ips []string
	// first is the first host the caller asked for, used as subject CN.
	first string
}

func newSANSet(hosts []string) (sanSet, error) {
	var s sanSet
	for _, h := range append(slices.Clone(hosts), defaultHosts...) {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			s.ips = append(s.ips, ip.String())
		} else if strings.ContainsAny(h, ":/ ") {
			return sanSet{}, fmt.Errorf("certs: host %q is not a DNS name or IP address", h)
		} else {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			s.dns = append(s.dns, h)
		}
		if s.first == "" {
			s.first = h
		}
	}
	slices.Sort(s.dns)
	slices.Sort(s.ips)
	s.dns = slices.Compact(s.dns)
	s.ips = slices.Compact(s.ips)
	return s, nil
}

// sanSetOf returns the SANs of an existing certificate in normalised form.
func sanSetOf(cert *x509.Certificate) sanSet {
	var s sanSet
	for _, d := range cert.DNSNames {
		s.dns = append(s.dns, strings.ToLower(d))
	}
	for _, ip := range cert.IPAddresses {
		s.ips = append(s.ips, ip.String())
	}
	slices.Sort(s.dns)
	slices.Sort(s.ips)
	s.dns = slices.Compact(s.dns)
	s.ips = slices.Compact(s.ips)
	return s
}

func (s sanSet) equal(o sanSet) bool {
	return slices.Equal(s.dns, o.dns) && slices.Equal(s.ips, o.ips)
}

func (s sanSet) commonName() string {
	if s.first == "" {
		return "localhost"
	}
	return s.first
}
