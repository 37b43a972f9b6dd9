// SPDX-License-Identifier: MIT

package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// RegistrationKeyName is the skn of a Device Provisioning Service
// registration token: devices sign it with their own symmetric key, and
// the official SDKs all send this fixed name (Node SymmetricKeySecurityClient,
// Python's symmetric-key signing mechanism, C prov_auth_client).
const RegistrationKeyName = "registration"

// RegistrationResource is the unencoded SAS resource of a provisioning
// registration: {idScope}/registrations/{registrationId}.
func RegistrationResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}

// DeriveDeviceKey returns the key a device of a symmetric-key enrollment
// group uses: base64(HMAC-SHA256(groupKey, registrationId)), with groupKey
// base64-decoded first. The DPS documentation gives this derivation, and the
// provisioned hub identity keeps the derived key.
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	k, err := decodeKey(groupKey)
	if err != nil {
		return "", fmt.Errorf("sas: group key: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}
