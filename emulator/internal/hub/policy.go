// SPDX-License-Identifier: MIT

package hub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Rights is a set of shared-access-policy permissions.
type Rights uint8

// The hub's permissions (iothub-protocol.md §2.4).
const (
	RegistryRead Rights = 1 << iota
	RegistryWrite
	ServiceConnect
	DeviceConnect

	AllRights = RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect
)

var rightNames = []struct {
	r    Rights
	name string
}{{RegistryRead, "RegistryRead"}, {RegistryWrite, "RegistryWrite"}, {ServiceConnect, "ServiceConnect"}, {DeviceConnect, "DeviceConnect"}}

func (r Rights) String() string {
	var parts []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ", ")
}

// ParseRights reads a permission name (case-insensitive).
func ParseRights(name string) (Rights, error) {
	for _, n := range rightNames {
		if strings.EqualFold(n.name, name) {
			return n.r, nil
		}
	}
	return 0, fmt.Errorf("unknown permission %q (want RegistryRead, RegistryWrite, ServiceConnect or DeviceConnect)", name)
}

// Policy is a shared access policy.
type Policy struct {
	Name         string
	PrimaryKey   string
	SecondaryKey string
	Rights       Rights
}

// OwnerPolicy is the name of the all-rights policy.
const OwnerPolicy = "iothubowner"

// DefaultPolicies returns the policies a new hub has. The iothubowner keys
// are ownerPrimary (and a secondary derived from it); the other policies'
// keys are derived from ownerPrimary too, so a hub started with the same
// owner key always has the same keys, with nothing stored.
func DefaultPolicies(ownerPrimary string) []Policy {
	defs := []struct {
		name   string
		rights Rights
	}{
		{OwnerPolicy, AllRights},
		{"service", ServiceConnect},
		{"device", DeviceConnect},
		{"registryRead", RegistryRead},
		{"registryReadWrite", RegistryRead | RegistryWrite},
	}
	out := make([]Policy, 0, len(defs))
	for _, d := range defs {
		p := Policy{Name: d.name, Rights: d.rights,
			PrimaryKey:   deriveKey(ownerPrimary, "primary:"+d.name),
			SecondaryKey: deriveKey(ownerPrimary, "secondary:"+d.name)}
		if d.name == OwnerPolicy {
			p.PrimaryKey = ownerPrimary
		}
		out = append(out, p)
	}
	return out
}

func deriveKey(base, label string) string {
	m := hmac.New(sha256.New, []byte(base))
	m.Write([]byte(label))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
