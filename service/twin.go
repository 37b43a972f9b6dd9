// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Twin is a device or module twin as the service API returns it.
type Twin struct {
	DeviceID                  string                       `json:"deviceId,omitempty"`
	ModuleID                  string                       `json:"moduleId,omitempty"` // module twins only
	ETag                      string                       `json:"etag,omitempty"`     // twin etag, for If-Match on twin writes
	DeviceETag                string                       `json:"deviceEtag,omitempty"`
	Status                    DeviceStatus                 `json:"status,omitempty"`
	StatusReason              string                       `json:"statusReason,omitempty"`
	StatusUpdateTime          time.Time                    `json:"statusUpdateTime,omitzero"`
	ConnectionState           ConnectionState              `json:"connectionState,omitempty"`
	LastActivityTime          time.Time                    `json:"lastActivityTime,omitzero"`
	CloudToDeviceMessageCount int                          `json:"cloudToDeviceMessageCount,omitempty"`
	AuthenticationType        AuthenticationType           `json:"authenticationType,omitempty"`
	X509Thumbprint            *X509Thumbprint              `json:"x509Thumbprint,omitempty"`
	ModelID                   string                       `json:"modelId,omitempty"` // IoT Plug and Play model id, "" if none
	Version                   int64                        `json:"version,omitempty"`
	Tags                      TwinCollection               `json:"tags,omitempty"`
	Properties                TwinProperties               `json:"properties,omitzero"`
	Configurations            map[string]TwinConfiguration `json:"configurations,omitempty"` // configurations that target the twin, by id (read-only)
	Capabilities              *DeviceCapabilities          `json:"capabilities,omitempty"`
	DeviceScope               string                       `json:"deviceScope,omitempty"`
	ParentScopes              []string                     `json:"parentScopes,omitempty"`
}

// TwinProperties holds the desired and reported sections of a twin.
type TwinProperties struct {
	Desired  TwinCollection `json:"desired,omitempty"`
	Reported TwinCollection `json:"reported,omitempty"`
}

// TwinCollection is an open JSON object (tags, desired or reported
// properties), kept as the raw JSON the hub sent, including the $metadata
// and $version members. Use Map, Get or Decode to read it and
// NewTwinCollection to build one. In a patch, a member set to null deletes
// that member.
type TwinCollection []byte

// NewTwinCollection encodes v, which must encode to a JSON object (a map or
// a struct).
func NewTwinCollection(v any) (TwinCollection, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("service: twin collection must be a JSON object")
	}
	return TwinCollection(b), nil
}

// MarshalJSON returns c itself, or null when c is empty.
func (c TwinCollection) MarshalJSON() ([]byte, error) {
	if len(c) == 0 {
		return []byte("null"), nil
	}
	return c, nil
}

// UnmarshalJSON stores a copy of b; null leaves c empty.
func (c *TwinCollection) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = nil
		return nil
	}
	*c = bytes.Clone(b)
	return nil
}

// Map decodes c into a map (numbers become float64). An empty collection
// gives an empty map.
func (c TwinCollection) Map() (map[string]any, error) {
	m := map[string]any{}
	if len(c) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(c, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Get returns the raw JSON of the top-level member key.
func (c TwinCollection) Get(key string) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if len(c) == 0 || json.Unmarshal(c, &m) != nil {
		return nil, false
	}
	v, ok := m[key]
	return v, ok
}

// Decode unmarshals c into v, which is typically a pointer to a struct
// describing the properties.
func (c TwinCollection) Decode(v any) error {
	if len(c) == 0 {
		return nil
	}
	return json.Unmarshal(c, v)
}

// Version returns the collection's $version, or 0 when it has none (tags
// never do).
func (c TwinCollection) Version() int64 {
	raw, ok := c.Get("$version")
	if !ok {
		return 0
	}
	var v int64
	if json.Unmarshal(raw, &v) != nil {
		return 0
	}
	return v
}

func twinPath(deviceID string) string { return wire.TwinPath(deviceID, "") }

func moduleTwinPath(deviceID, moduleID string) string { return wire.TwinPath(deviceID, moduleID) }

// GetTwin returns the twin of device id.
func (c *Client) GetTwin(ctx context.Context, deviceID string) (*Twin, error) {
	if deviceID == "" {
		return nil, errorf("GetTwin", "device id is required")
	}
	return c.getTwin(ctx, "GetTwin", twinPath(deviceID))
}

// GetModuleTwin returns the twin of a module.
func (c *Client) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (*Twin, error) {
	if deviceID == "" || moduleID == "" {
		return nil, errorf("GetModuleTwin", "device id and module id are required")
	}
	return c.getTwin(ctx, "GetModuleTwin", moduleTwinPath(deviceID, moduleID))
}

// UpdateTwin merges patch into the twin of a device (PATCH /twins/{id}):
// patch.Tags and patch.Properties.Desired are deep-merged, and members set
// to null are removed; other fields of patch are ignored by the hub. With a
// non-empty etag the update only happens if the twin still has that etag
// (otherwise ErrPreconditionFailed); an empty etag sends If-Match "*", as
// Node's Registry.updateTwin does for a fresh twin. It returns the updated
// twin. It is never retried: applying a patch twice bumps versions twice.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch *Twin, etag string) (*Twin, error) {
	if deviceID == "" || patch == nil {
		return nil, errorf("UpdateTwin", "device id and patch are required")
	}
	return c.writeTwin(ctx, "UpdateTwin", http.MethodPatch, twinPath(deviceID), patch, etag)
}

// UpdateModuleTwin is UpdateTwin for a module twin.
func (c *Client) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch *Twin, etag string) (*Twin, error) {
	if deviceID == "" || moduleID == "" || patch == nil {
		return nil, errorf("UpdateModuleTwin", "device id, module id and patch are required")
	}
	return c.writeTwin(ctx, "UpdateModuleTwin", http.MethodPatch, moduleTwinPath(deviceID, moduleID), patch, etag)
}

// ReplaceTwin replaces the tags and desired properties of a device twin
// with those of twin (PUT /twins/{id}), conditionally on etag when it is
// not empty. It returns the updated twin. With an etag it is retried only
// after 429 and 503 (see RetryPolicy).
func (c *Client) ReplaceTwin(ctx context.Context, deviceID string, twin *Twin, etag string) (*Twin, error) {
	if deviceID == "" || twin == nil {
		return nil, errorf("ReplaceTwin", "device id and twin are required")
	}
	return c.writeTwin(ctx, "ReplaceTwin", http.MethodPut, twinPath(deviceID), twin, etag)
}

// ReplaceModuleTwin is ReplaceTwin for a module twin.
func (c *Client) ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, twin *Twin, etag string) (*Twin, error) {
	if deviceID == "" || moduleID == "" || twin == nil {
		return nil, errorf("ReplaceModuleTwin", "device id, module id and twin are required")
	}
	return c.writeTwin(ctx, "ReplaceModuleTwin", http.MethodPut, moduleTwinPath(deviceID, moduleID), twin, etag)
}

func (c *Client) getTwin(ctx context.Context, op, path string) (*Twin, error) {
	out := new(Twin)
	if _, err := c.do(ctx, &call{op: op, method: http.MethodGet, path: path, idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) writeTwin(ctx context.Context, op, method, path string, body *Twin, etag string) (*Twin, error) {
	out := new(Twin)
	_, err := c.do(ctx, &call{
		op: op, method: method, path: path, header: ifMatch(etag), body: body,
		// A PUT replaces the sections wholesale, so repeating it is harmless.
		idempotent: method == http.MethodPut,
	}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}
