// SPDX-License-Identifier: MIT

package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"time"
)

// SASVersion is the signed version (sv) of the signatures this package
// makes and the x-ms-version of its requests. 2020-10-02 is the last
// version whose service SAS string-to-sign has no encryption-scope line
// (create-service-sas, "Version 2018-11-09 and later"); Azure Storage and
// Azurite accept it.
const SASVersion = "2020-10-02"

// sasTime is the ISO 8601 form signatures carry (seconds, UTC).
func sasTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func (a *Account) sign(stringToSign string) string {
	m := hmac.New(sha256.New, a.Key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// BlobSAS is a service SAS for one blob with the given permissions (in the
// service's order, e.g. "rcw"), valid from start (zero: no start) until
// expiry. It returns the query string without '?'.
func (a *Account) BlobSAS(container, blob, perms string, start, expiry time.Time) string {
	return a.serviceSAS(container, blob, "b", perms, start, expiry)
}

// ContainerSAS is a service SAS for a container and the blobs in it.
func (a *Account) ContainerSAS(container, perms string, start, expiry time.Time) string {
	return a.serviceSAS(container, "", "c", perms, start, expiry)
}

// serviceSAS signs the 15-line string of create-service-sas for versions
// 2018-11-09 to 2020-10-02: permissions, start, expiry, canonical resource,
// identifier, IP range, protocol, version, resource, snapshot time, and the
// five response-header overrides. Unused fields are empty lines.
func (a *Account) serviceSAS(container, blob, resource, perms string, start, expiry time.Time) string {
	canonical := "/blob/" + a.Name + "/" + container
	if blob != "" {
		canonical += "/" + blob
	}
	st, se := sasTime(start), sasTime(expiry)
	sig := a.sign(strings.Join([]string{perms, st, se, canonical, "", "", "", SASVersion, resource, "", "", "", "", "", ""}, "\n"))
	q := url.Values{}
	q.Set("sv", SASVersion)
	q.Set("sr", resource)
	q.Set("sp", perms)
	if st != "" {
		q.Set("st", st)
	}
	q.Set("se", se)
	q.Set("sig", sig)
	return q.Encode()
}

// AccountSAS is an account SAS for the blob service (ss=b) with the given
// permissions and resource types (srt, e.g. "sco"), for operations no
// service SAS grants, such as creating a container.
func (a *Account) AccountSAS(perms, resourceTypes string, start, expiry time.Time) string {
	st, se := sasTime(start), sasTime(expiry)
	// create-account-sas, versions before 2020-12-06: nine lines, each
	// ending in a newline.
	sig := a.sign(strings.Join([]string{a.Name, perms, "b", resourceTypes, st, se, "", "", SASVersion, ""}, "\n"))
	q := url.Values{}
	q.Set("sv", SASVersion)
	q.Set("ss", "b")
	q.Set("srt", resourceTypes)
	q.Set("sp", perms)
	if st != "" {
		q.Set("st", st)
	}
	q.Set("se", se)
	q.Set("sig", sig)
	return q.Encode()
}
