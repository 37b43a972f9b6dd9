// SPDX-License-Identifier: MIT

package service

import "time"

// The JSON field names below are the hub's, as listed by the Node SDK's
// generated mappers (azure-iothub dist/pl/models/mappers.js). Note that a
// device identity has statusUpdatedTime while a twin has statusUpdateTime.
// Timestamps the hub never set come back as 0001-01-01T00:00:00Z, which
// decodes to the zero time.Time.

// DeviceStatus is whether an identity may connect: "enabled" or "disabled".
type DeviceStatus string

// Device statuses.
const (
	StatusEnabled  DeviceStatus = "enabled"
	StatusDisabled DeviceStatus = "disabled"
)

// ConnectionState is "Connected" or "Disconnected".
type ConnectionState string

// Connection states.
const (
	Connected    ConnectionState = "Connected"
	Disconnected ConnectionState = "Disconnected"
)

// AuthenticationType is how an identity authenticates.
type AuthenticationType string

// Authentication types.
const (
	AuthSAS                  AuthenticationType = "sas"                  // symmetric keys
	AuthSelfSigned           AuthenticationType = "selfSigned"           // X.509 certificate pinned by thumbprint
	AuthCertificateAuthority AuthenticationType = "certificateAuthority" // X.509 certificate signed by a CA registered on the hub
	AuthNone                 AuthenticationType = "none"                 // modules of IoT Edge that authenticate through their device
)

// Device is a device identity in the hub's registry.
type Device struct {
	DeviceID                   string                   `json:"deviceId"`
	GenerationID               string                   `json:"generationId,omitempty"` // changes when the id is deleted and created again
	ETag                       string                   `json:"etag,omitempty"`         // identity etag, for If-Match
	ConnectionState            ConnectionState          `json:"connectionState,omitempty"`
	Status                     DeviceStatus             `json:"status,omitempty"`
	StatusReason               string                   `json:"statusReason,omitempty"`
	ConnectionStateUpdatedTime time.Time                `json:"connectionStateUpdatedTime,omitzero"`
	StatusUpdatedTime          time.Time                `json:"statusUpdatedTime,omitzero"`
	LastActivityTime           time.Time                `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount  int                      `json:"cloudToDeviceMessageCount,omitempty"`
	Authentication             *AuthenticationMechanism `json:"authentication,omitempty"`
	Capabilities               *DeviceCapabilities      `json:"capabilities,omitempty"`
	DeviceScope                string                   `json:"deviceScope,omitempty"`  // scope of the edge device this one belongs to
	ParentScopes               []string                 `json:"parentScopes,omitempty"` // scopes of parent edge devices
}

// Module is a module identity on a device.
type Module struct {
	ModuleID                   string                   `json:"moduleId"`
	DeviceID                   string                   `json:"deviceId"`
	ManagedBy                  string                   `json:"managedBy,omitempty"` // e.g. "IotEdge"
	GenerationID               string                   `json:"generationId,omitempty"`
	ETag                       string                   `json:"etag,omitempty"`
	ConnectionState            ConnectionState          `json:"connectionState,omitempty"`
	ConnectionStateUpdatedTime time.Time                `json:"connectionStateUpdatedTime,omitzero"`
	LastActivityTime           time.Time                `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount  int                      `json:"cloudToDeviceMessageCount,omitempty"`
	Authentication             *AuthenticationMechanism `json:"authentication,omitempty"`
}

// AuthenticationMechanism holds an identity's credentials.
type AuthenticationMechanism struct {
	Type           AuthenticationType `json:"type,omitempty"`
	SymmetricKey   *SymmetricKey      `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint    `json:"x509Thumbprint,omitempty"`
}

// SymmetricKey is a pair of base64 keys. Empty keys on create ask the hub to
// generate them, so both fields are always sent.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint pins self-signed certificates by their SHA-1 or SHA-256
// thumbprint (hex).
type X509Thumbprint struct {
	PrimaryThumbprint   string `json:"primaryThumbprint,omitempty"`
	SecondaryThumbprint string `json:"secondaryThumbprint,omitempty"`
}

// DeviceCapabilities lists optional device features.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"` // the device is an IoT Edge device
}

// SASAuth returns SAS authentication with the given keys; empty keys make
// the hub generate them.
func SASAuth(primaryKey, secondaryKey string) *AuthenticationMechanism {
	return &AuthenticationMechanism{
		Type:         AuthSAS,
		SymmetricKey: &SymmetricKey{PrimaryKey: primaryKey, SecondaryKey: secondaryKey},
	}
}

// X509Auth returns self-signed X.509 authentication pinning the given
// certificate thumbprints.
func X509Auth(primaryThumbprint, secondaryThumbprint string) *AuthenticationMechanism {
	return &AuthenticationMechanism{
		Type:           AuthSelfSigned,
		X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: primaryThumbprint, SecondaryThumbprint: secondaryThumbprint},
	}
}

// CAAuth returns X.509 authentication by a certificate authority registered
// on the hub.
func CAAuth() *AuthenticationMechanism {
	return &AuthenticationMechanism{Type: AuthCertificateAuthority}
}

// normalizeAuth returns a copy of a with the defaults Node fills in before
// sending an identity (Registry._normalizeAuthentication in azure-iothub
// dist/registry.js): no authentication becomes SAS with empty keys (the hub
// then generates them); a missing type becomes selfSigned when a thumbprint
// is given and sas otherwise.
func normalizeAuth(a *AuthenticationMechanism) *AuthenticationMechanism {
	if a == nil {
		return SASAuth("", "")
	}
	n := *a
	if n.Type == "" {
		if t := n.X509Thumbprint; t != nil && (t.PrimaryThumbprint != "" || t.SecondaryThumbprint != "") {
			n.Type = AuthSelfSigned
		} else {
			n.Type = AuthSAS
		}
	}
	if n.Type == AuthSAS && n.SymmetricKey == nil {
		n.SymmetricKey = &SymmetricKey{}
	}
	return &n
}

// RegistryStatistics counts the devices in the registry.
type RegistryStatistics struct {
	TotalDeviceCount    int64 `json:"totalDeviceCount"`
	EnabledDeviceCount  int64 `json:"enabledDeviceCount"`
	DisabledDeviceCount int64 `json:"disabledDeviceCount"`
}

// ServiceStatistics reports live hub figures.
type ServiceStatistics struct {
	ConnectedDeviceCount int64 `json:"connectedDeviceCount"`
}
