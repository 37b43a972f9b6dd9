// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultPolicies(t *testing.T) {
	pols := DefaultPolicies(regOwnerKey)
	rights := map[string]Rights{}
	for _, p := range pols {
		rights[p.Name] = p.Rights
	}
	// iothub-protocol.md §2.4.
	want := map[string]Rights{
		"iothubowner":       RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect,
		"service":           ServiceConnect,
		"device":            DeviceConnect,
		"registryRead":      RegistryRead,
		"registryReadWrite": RegistryRead | RegistryWrite,
	}
	if diff := cmp.Diff(want, rights); diff != "" {
		t.Errorf("policies and rights (-want +got):\n%s", diff)
	}
	if pols[0].Name != OwnerPolicy || pols[0].PrimaryKey != regOwnerKey {
		t.Errorf("got first policy %s with key %q, want iothubowner with the given key", pols[0].Name, pols[0].PrimaryKey)
	}

	// Derived keys are valid, distinct, and the same on every call with the
	// same owner key; a different owner key derives different ones.
	seen := map[string]string{}
	for _, p := range pols {
		for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
			if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) < 16 {
				t.Errorf("policy %s key %q is not base64 of at least 16 bytes", p.Name, k)
			}
			if other, dup := seen[k]; dup {
				t.Errorf("policies %s and %s share key %q", other, p.Name, k)
			}
			seen[k] = p.Name
		}
	}
	if diff := cmp.Diff(pols, DefaultPolicies(regOwnerKey)); diff != "" {
		t.Errorf("second call differs (-first +second):\n%s", diff)
	}
	otherKey := base64.StdEncoding.EncodeToString([]byte("another owner key, 32 bytes long"))
	for i, p := range DefaultPolicies(otherKey) {
		if p.SecondaryKey == pols[i].SecondaryKey || (p.Name != OwnerPolicy && p.PrimaryKey == pols[i].PrimaryKey) {
			t.Errorf("policy %s keeps its keys under another owner key", p.Name)
		}
	}
}

func TestParseRights(t *testing.T) {
	tests := []struct {
		in      string
		want    Rights
		wantErr bool
	}{
		{"RegistryRead", RegistryRead, false},
		{"registrywrite", RegistryWrite, false},
		{"SERVICECONNECT", ServiceConnect, false},
		{"DeviceConnect", DeviceConnect, false},
		{"", 0, true},
		{"Registry", 0, true},
		{"RegistryRead, RegistryWrite", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRights(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseRights(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRightsString(t *testing.T) {
	tests := []struct {
		r    Rights
		want string
	}{
		{0, ""},
		{RegistryRead, "RegistryRead"},
		{RegistryRead | RegistryWrite, "RegistryRead, RegistryWrite"},
		{AllRights, "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect"},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("Rights(%d).String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}
