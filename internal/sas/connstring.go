// SPDX-License-Identifier: MIT

package sas

import (
	"errors"
	"fmt"
	"strings"
)

// Canonical connection-string names, in the order String writes them.
const (
	NameHostName              = "HostName"
	NameDeviceID              = "DeviceId"
	NameModuleID              = "ModuleId"
	NameSharedAccessKeyName   = "SharedAccessKeyName"
	NameSharedAccessKey       = "SharedAccessKey"
	NameSharedAccessSignature = "SharedAccessSignature"
	NameX509                  = "x509"
	NameGatewayHostName       = "GatewayHostName"
)

var canonicalNames = []string{
	NameHostName, NameDeviceID, NameModuleID, NameSharedAccessKeyName,
	NameSharedAccessKey, NameSharedAccessSignature, NameX509, NameGatewayHostName,
}

// Kind is the kind of identity a connection string describes.
type Kind int

// Kinds of connection string.
const (
	KindUnknown Kind = iota // neither DeviceId nor SharedAccessKeyName
	KindService             // hub-level policy: SharedAccessKeyName and no DeviceId
	KindDevice              // DeviceId without ModuleId
	KindModule              // DeviceId and ModuleId
)

// String returns the kind's name in lower case.
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindDevice:
		return "device"
	case KindModule:
		return "module"
	}
	return "unknown"
}

// ConnectionString holds the parts of an IoT Hub connection string.
// Values are kept verbatim; none may contain ';'.
type ConnectionString struct {
	HostName              string // hub host name; also used in the SAS resource
	DeviceID              string // DeviceId
	ModuleID              string // ModuleId
	SharedAccessKeyName   string // policy name; set for service strings and hub-policy device strings
	SharedAccessKey       string // base64 symmetric key
	SharedAccessSignature string // a ready-made token, "SharedAccessSignature sr=..."
	GatewayHostName       string // host to connect to instead of HostName (IoT Edge)
	X509                  bool   // x509=true: authenticate with a client certificate
}

// ParseConnectionString parses and validates s. Items are separated by ';'
// and split at their first '=' so base64 padding and embedded tokens
// survive; items without '=', with an empty name or with an empty value are
// dropped, as the Node SDK does. Names match case-insensitively (the C#
// SDK's rule); when a name appears in several spellings the canonical one
// wins, otherwise the last occurrence wins. Unknown names are ignored.
// x509 accepts "true" or "false" in any case.
func ParseConnectionString(s string) (ConnectionString, error) {
	values := map[string]string{}  // canonical name -> value
	canonical := map[string]bool{} // value came from the canonical spelling
	for item := range strings.SplitSeq(s, ";") {
		name, value, ok := strings.Cut(item, "=")
		if !ok || name == "" || value == "" {
			continue
		}
		canon := canonicalName(name)
		if canon == "" {
			continue
		}
		exact := name == canon
		if canonical[canon] && !exact {
			continue
		}
		values[canon] = value
		canonical[canon] = exact
	}

	c := ConnectionString{
		HostName:              values[NameHostName],
		DeviceID:              values[NameDeviceID],
		ModuleID:              values[NameModuleID],
		SharedAccessKeyName:   values[NameSharedAccessKeyName],
		SharedAccessKey:       values[NameSharedAccessKey],
		SharedAccessSignature: values[NameSharedAccessSignature],
		GatewayHostName:       values[NameGatewayHostName],
	}
	if v, ok := values[NameX509]; ok {
		switch {
		case strings.EqualFold(v, "true"):
			c.X509 = true
		case strings.EqualFold(v, "false"):
		default:
			return ConnectionString{}, fmt.Errorf("sas: connection string has x509=%s; want true or false", v)
		}
	}
	if err := c.Validate(); err != nil {
		return ConnectionString{}, err
	}
	return c, nil
}

func canonicalName(name string) string {
	for _, n := range canonicalNames {
		if strings.EqualFold(name, n) {
			return n
		}
	}
	return ""
}

// Kind reports which identity c describes: KindService when it names a
// policy and no device, KindModule when it has DeviceId and ModuleId,
// KindDevice when it has DeviceId only.
func (c ConnectionString) Kind() Kind {
	switch {
	case c.DeviceID != "" && c.ModuleID != "":
		return KindModule
	case c.DeviceID != "":
		return KindDevice
	case c.SharedAccessKeyName != "":
		return KindService
	}
	return KindUnknown
}

// Validate checks that c is complete for its kind. Device and module strings
// need HostName, DeviceId and exactly one of SharedAccessKey,
// SharedAccessSignature and x509=true (the Node device SDK's rule); service
// strings need HostName, SharedAccessKeyName and exactly one of
// SharedAccessKey and SharedAccessSignature.
func (c ConnectionString) Validate() error {
	if c.HostName == "" {
		return errors.New("sas: connection string is missing HostName")
	}
	for _, f := range []struct{ name, value string }{
		{NameHostName, c.HostName}, {NameDeviceID, c.DeviceID}, {NameModuleID, c.ModuleID},
		{NameSharedAccessKeyName, c.SharedAccessKeyName}, {NameSharedAccessKey, c.SharedAccessKey},
		{NameSharedAccessSignature, c.SharedAccessSignature}, {NameGatewayHostName, c.GatewayHostName},
	} {
		if strings.Contains(f.value, ";") {
			return fmt.Errorf("sas: connection string %s contains ';'", f.name)
		}
	}
	switch c.Kind() {
	case KindUnknown:
		if c.ModuleID != "" {
			return errors.New("sas: connection string has ModuleId but no DeviceId")
		}
		return errors.New("sas: connection string is missing DeviceId (device) or SharedAccessKeyName (service)")
	case KindService:
		if c.X509 {
			return errors.New("sas: service connection string cannot use x509")
		}
		return exactlyOne([]credential{
			{NameSharedAccessKey, c.SharedAccessKey != ""},
			{NameSharedAccessSignature, c.SharedAccessSignature != ""},
		})
	}
	return exactlyOne([]credential{
		{NameSharedAccessKey, c.SharedAccessKey != ""},
		{NameSharedAccessSignature, c.SharedAccessSignature != ""},
		{NameX509 + "=true", c.X509},
	})
}

// credential is one way a connection string can authenticate.
type credential struct {
	name    string
	present bool
}

// exactlyOne returns an error unless exactly one of creds is present.
func exactlyOne(creds []credential) error {
	var names, have []string
	for _, c := range creds {
		names = append(names, c.name)
		if c.present {
			have = append(have, c.name)
		}
	}
	choices := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	switch len(have) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("sas: connection string has no credential; want one of %s", choices)
	}
	return fmt.Errorf("sas: connection string has %s; want only one of %s", strings.Join(have, " and "), choices)
}

// String formats c in canonical order (HostName, DeviceId, ModuleId,
// SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, x509,
// GatewayHostName), omitting empty parts.
func (c ConnectionString) String() string {
	var parts []string
	add := func(name, value string) {
		if value != "" {
			parts = append(parts, name+"="+value)
		}
	}
	add(NameHostName, c.HostName)
	add(NameDeviceID, c.DeviceID)
	add(NameModuleID, c.ModuleID)
	add(NameSharedAccessKeyName, c.SharedAccessKeyName)
	add(NameSharedAccessKey, c.SharedAccessKey)
	add(NameSharedAccessSignature, c.SharedAccessSignature)
	if c.X509 {
		add(NameX509, "true")
	}
	add(NameGatewayHostName, c.GatewayHostName)
	return strings.Join(parts, ";")
}
