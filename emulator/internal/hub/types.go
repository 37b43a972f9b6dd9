// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Identity names a device or a module on a device.
type Identity struct {
	DeviceID string
	ModuleID string // empty for a device
}

func (i Identity) String() string {
	if i.ModuleID == "" {
		return i.DeviceID
	}
	return i.DeviceID + "/" + i.ModuleID
}

// key is the store key: deviceId, or deviceId \x00 moduleId. \x00 cannot occur in ids.
func (i Identity) key() string {
	if i.ModuleID == "" {
		return i.DeviceID
	}
	return i.DeviceID + "\x00" + i.ModuleID
}

// Time is a timestamp as the hub writes it: UTC with seven fractional
// digits, and "0001-01-01T00:00:00Z" for never.
type Time struct{ time.Time }

// TimeLayout is the hub's timestamp format.
const TimeLayout = "2006-01-02T15:04:05.0000000Z"

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`"0001-01-01T00:00:00Z"`), nil
	}
	return []byte(`"` + t.UTC().Format(TimeLayout) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler; it accepts any RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" || strings.HasPrefix(s, "0001-01-01T00:00:00") {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// The hub's own older format omits the zone.
		v, err = time.Parse("2006-01-02T15:04:05.9999999", s)
		if err != nil {
			return err
		}
	}
	t.Time = v.UTC()
	return nil
}

// SymmetricKey holds a pair of base64 keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds a pair of certificate thumbprints (hex, SHA-1 or SHA-256).
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Authentication types as the hub names them.
const (
	AuthSAS        = "sas"
	AuthSelfSigned = "selfSigned"
	AuthCA         = "certificateAuthority"
	AuthNone       = "none"
)

// Authentication is an identity's credential description.
type Authentication struct {
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Device is a device identity in the shape of the registry REST API.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime Time           `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          Time           `json:"statusUpdatedTime"`
	LastActivityTime           Time           `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
	DeviceScope                string         `json:"deviceScope,omitempty"`
	ParentScopes               []string       `json:"parentScopes,omitempty"`
}

// Module is a module identity in the shape of the registry REST API.
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	ManagedBy                  string         `json:"managedBy,omitempty"`
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	ConnectionStateUpdatedTime Time           `json:"connectionStateUpdatedTime"`
	LastActivityTime           Time           `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
}

// Connection states.
const (
	Connected    = "Connected"
	Disconnected = "Disconnected"
)

// Device statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// identityETag renders an identity etag counter the way the hub does:
// base64 of the counter's decimal text (e.g. "MQ==" for 1).
func identityETag(n int64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

// MethodRequest is a direct-method invocation.
type MethodRequest struct {
	Name            string
	Payload         []byte // raw JSON as sent (null reaches the device as null); nil: omitted, an empty body
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
}

// MethodResult is what the device answered.
type MethodResult struct {
	Status  int
	Payload []byte // raw JSON, "null" when the device sent nothing
}
