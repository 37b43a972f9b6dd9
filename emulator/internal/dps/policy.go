// SPDX-License-Identifier: MIT

package dps

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/iothubemulator/iothub/internal/sas"
)

// Rights is a set of provisioning-service policy permissions.
type Rights uint8

// The service's permissions, as the portal names them.
const (
	ServiceConfig Rights = 1 << iota
	EnrollmentRead
	EnrollmentWrite
	DeviceConnect
	RegistrationStatusRead
	RegistrationStatusWrite

	AllRights = ServiceConfig | EnrollmentRead | EnrollmentWrite | DeviceConnect | RegistrationStatusRead | RegistrationStatusWrite
)

var rightNames = []struct {
	r    Rights
	name string
}{
	{ServiceConfig, "ServiceConfig"}, {EnrollmentRead, "EnrollmentRead"}, {EnrollmentWrite, "EnrollmentWrite"},
	{DeviceConnect, "DeviceConnect"}, {RegistrationStatusRead, "RegistrationStatusRead"}, {RegistrationStatusWrite, "RegistrationStatusWrite"},
}

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
	var all []string
	for _, n := range rightNames {
		all = append(all, n.name)
	}
	return 0, fmt.Errorf("unknown provisioning permission %q (want one of %s)", name, strings.Join(all, ", "))
}

// Policy is a shared access policy of the provisioning service.
type Policy struct {
	Name         string
	PrimaryKey   string
	SecondaryKey string
	Rights       Rights
}

// OwnerPolicy is the name of the all-rights policy every service has.
const OwnerPolicy = "provisioningserviceowner"

// DefaultPolicies returns the policies a new service has: the owner
// policy, with ownerKey as its primary key.
func DefaultPolicies(ownerKey string) []Policy {
	return []Policy{{Name: OwnerPolicy, PrimaryKey: ownerKey, Rights: AllRights}}
}

// checkKey accepts base64 keys of 16 to 64 bytes, the service's bounds.
func checkKey(k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return errors.New("not valid base64")
	}
	if len(b) < 16 || len(b) > 64 {
		return fmt.Errorf("%d bytes; want 16 to 64", len(b))
	}
	return nil
}

// AuthorizeService checks the Authorization header of a service API
// request: a SAS token for this service's host, signed with a policy that
// holds any right of anyOf. Every failure is 401002, as the service answers.
func (s *Service) AuthorizeService(header string, anyOf Rights) error {
	tok, err := sas.ParseToken(header)
	if err != nil || tok.KeyName == "" {
		return Unauthorized("Unauthorized")
	}
	p, ok := s.policies[tok.KeyName]
	if !ok || !(tok.Verify(p.PrimaryKey) || (p.SecondaryKey != "" && tok.Verify(p.SecondaryKey))) {
		return Unauthorized("Unauthorized")
	}
	if tok.Expired(s.Now(), sas.DefaultSkew) || !s.hostAccepted(tok.Resource) {
		return Unauthorized("Unauthorized")
	}
	if p.Rights&anyOf == 0 {
		return Unauthorized("Unauthorized: the policy %s lacks %s.", p.Name, anyOf)
	}
	return nil
}

// hostAccepted reports whether a service token's resource names this
// service: its host, with or without a port or a trailing path.
func (s *Service) hostAccepted(resource string) bool {
	host, _, _ := strings.Cut(resource, "/")
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	for _, h := range s.hosts {
		if h == host {
			return true
		}
	}
	return false
}
