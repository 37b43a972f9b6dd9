// SPDX-License-Identifier: MIT

package sas

import "strings"

// ResourceURI returns the unencoded SAS resource for an identity:
// host for the hub, host/devices/{id} for a device and
// host/devices/{id}/modules/{mid} for a module. moduleID is ignored when
// deviceID is empty. A ":port" suffix on host is dropped because the hub's
// resource names never carry one.
func ResourceURI(host, deviceID, moduleID string) string {
	uri := stripPort(host)
	if deviceID == "" {
		return uri
	}
	uri += "/devices/" + deviceID
	if moduleID != "" {
		uri += "/modules/" + moduleID
	}
	return uri
}

// Covers reports whether t grants access to resourceURI (unencoded, as built
// by ResourceURI): the token's resource must be a prefix of it by whole path
// segments, so host/devices/a covers host/devices/a/modules/m but not
// host/devices/ab. Host names compare case-insensitively and without port;
// the path compares exactly because registry ids are case-sensitive on the
// hub. Trailing slashes on either side are ignored.
func (t Token) Covers(resourceURI string) bool {
	tHost, tPath := splitResource(t.Resource)
	rHost, rPath := splitResource(resourceURI)
	if tHost == "" || !strings.EqualFold(tHost, rHost) {
		return false
	}
	if tPath == "" {
		return true
	}
	return rPath == tPath || strings.HasPrefix(rPath, tPath+"/")
}

// splitResource splits a resource URI into its host (port removed) and its
// path without leading or trailing slashes.
func splitResource(uri string) (host, path string) {
	host, path, _ = strings.Cut(uri, "/")
	return stripPort(host), strings.Trim(path, "/")
}

// stripPort removes a trailing ":digits" from host, keeping bracketed IPv6
// literals intact and leaving bare IPv6 addresses alone.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end >= 0 {
			return host[:end+1]
		}
		return host
	}
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[:i], ':') >= 0 {
		return host
	}
	for _, c := range host[i+1:] {
		if c < '0' || c > '9' {
			return host
		}
	}
	return host[:i]
}
