// SPDX-License-Identifier: MIT

package query

import "strings"

// Collections a query can read.
const (
	CollectionDevices = "devices"
	CollectionModules = "devices.modules"
	CollectionJobs    = "devices.jobs"
)

// twinFields are the service-view twin members (§5.1 of the protocol notes,
// the Node SDK Twin mapper). Their names resolve case-insensitively, because
// the docs query `SELECT DeviceId, LastActivityTime` and get `deviceId` and
// `lastActivityTime` back.
var twinFields = canonical(
	"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime",
	"cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint",
	"modelId", "version", "tags", "properties", "capabilities", "deviceScope",
	"parentScopes", "configurations",
)

// fixedChildren are the members below a twin field whose names are fixed by
// the twin schema rather than chosen by users, so they resolve
// case-insensitively too.
var fixedChildren = map[string]map[string]string{
	"properties":     canonical("desired", "reported"),
	"capabilities":   canonical("iotEdge"),
	"x509Thumbprint": canonical("primaryThumbprint", "secondaryThumbprint"),
}

// systemNames are the '$' members the hub writes into desired and reported
// sections. User keys cannot start with '$' (§5.6), so matching these
// case-insensitively anywhere cannot capture a user property.
var systemNames = canonical("$metadata", "$version", "$lastUpdated", "$lastUpdatedVersion")

func canonical(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// normalizePath rewrites a path as written in the query into the spelling
// the documents use: a leading collection name ("devices.deviceId",
// "devices.jobs.jobId", as in the docs' job queries) is dropped, and the
// twin's schema names get their canonical case. Names chosen by users, below
// tags and below properties.desired/reported, stay case-sensitive: the JSON
// document is case-sensitive, and the docs never show a case-folded match.
func normalizePath(p Path, collection string) Path {
	prefix := strings.Split(collection, ".")
	if len(p) > len(prefix) {
		strip := true
		for i, name := range prefix {
			if p[i].IsIndex || !strings.EqualFold(p[i].Name, name) {
				strip = false
				break
			}
		}
		if strip {
			p = p[len(prefix):]
		}
	}
	if collection == CollectionJobs || len(p) == 0 || p[0].IsIndex {
		return p
	}
	out := make(Path, len(p))
	copy(out, p)
	if c, ok := twinFields[strings.ToLower(out[0].Name)]; ok {
		out[0].Name = c
		if len(out) > 1 && !out[1].IsIndex {
			if c2, ok := fixedChildren[c][strings.ToLower(out[1].Name)]; ok {
				out[1].Name = c2
			}
		}
	}
	for i := 1; i < len(out); i++ {
		if n := out[i].Name; !out[i].IsIndex && strings.HasPrefix(n, "$") {
			if c, ok := systemNames[strings.ToLower(n)]; ok {
				out[i].Name = c
			}
		}
	}
	return out
}
