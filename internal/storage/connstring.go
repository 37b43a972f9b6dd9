// SPDX-License-Identifier: MIT

package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Azurite's well-known development account (UseDevelopmentStorage=true).
// The key is published by Microsoft for the storage emulators.
const (
	DevAccountName  = "devstoreaccount1"
	DevAccountKey   = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devBlobEndpoint = "http://127.0.0.1:10000/" + DevAccountName
)

// Account is a storage account as a connection string describes it.
type Account struct {
	Name         string   // account name, part of every signature
	Key          []byte   // decoded account key
	BlobEndpoint *url.URL // the blob service: scheme, host[:port] and, for Azurite, /{account}
}

// ParseConnectionString reads an Azure Storage connection string:
// AccountName and AccountKey with either BlobEndpoint or
// DefaultEndpointsProtocol and EndpointSuffix, or UseDevelopmentStorage=true
// for Azurite's well-known account on 127.0.0.1:10000.
func ParseConnectionString(s string) (*Account, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("storage connection string: %q is not name=value", part)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		kv["accountname"], kv["accountkey"] = DevAccountName, DevAccountKey
		if kv["blobendpoint"] == "" {
			kv["blobendpoint"] = devBlobEndpoint
		}
	}
	a := &Account{Name: kv["accountname"]}
	if a.Name == "" {
		return nil, errors.New("storage connection string: AccountName is missing")
	}
	if kv["accountkey"] == "" {
		return nil, errors.New("storage connection string: AccountKey is missing (SAS-only connection strings cannot sign upload URIs)")
	}
	key, err := base64.StdEncoding.DecodeString(kv["accountkey"])
	if err != nil || len(key) == 0 {
		return nil, errors.New("storage connection string: AccountKey is not base64")
	}
	a.Key = key
	ep := kv["blobendpoint"]
	if ep == "" {
		proto := kv["defaultendpointsprotocol"]
		if proto == "" {
			proto = "https"
		}
		suffix := kv["endpointsuffix"]
		if suffix == "" {
			suffix = "core.windows.net"
		}
		ep = proto + "://" + a.Name + ".blob." + suffix
	}
	u, err := url.Parse(strings.TrimRight(ep, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("storage connection string: BlobEndpoint %q is not an http(s) URL", ep)
	}
	u.RawQuery, u.Fragment = "", ""
	a.BlobEndpoint = u
	return a, nil
}

// HostName is the blob endpoint without its scheme, the form IoT Hub hands
// devices: "account.blob.core.windows.net", or for Azurite
// "127.0.0.1:10000/devstoreaccount1". Devices build
// https://{hostName}/{container}/{blob}{sasToken} from it.
func (a *Account) HostName() string {
	return a.BlobEndpoint.Host + a.BlobEndpoint.Path
}

// ContainerURL is the URL of a container, without a query.
func (a *Account) ContainerURL(container string) string {
	return a.BlobEndpoint.String() + "/" + url.PathEscape(container)
}

// BlobURL is the URL of a blob, without a query. The blob name's '/'
// separators are kept; each segment is escaped.
func (a *Account) BlobURL(container, blob string) string {
	return a.ContainerURL(container) + "/" + EscapeBlobName(blob)
}

// EscapeBlobName escapes a blob name for a URL path, keeping '/'.
func EscapeBlobName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
