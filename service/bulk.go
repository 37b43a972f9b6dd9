// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/internal/wire"
)

// ImportMode is what a bulk registry operation does with one identity.
type ImportMode string

// Import modes (the ExportImportDevice importMode values of the service API).
const (
	ImportCreate                ImportMode = "create"
	ImportUpdate                ImportMode = "update"
	ImportUpdateIfMatchETag     ImportMode = "updateIfMatchETag"
	ImportDelete                ImportMode = "delete"
	ImportDeleteIfMatchETag     ImportMode = "deleteIfMatchETag"
	ImportUpdateTwin            ImportMode = "updateTwin"
	ImportUpdateTwinIfMatchETag ImportMode = "updateTwinIfMatchETag"
)

// ExportImportDevice is one entry of a bulk registry operation. Note that
// the id field is "id" here, not "deviceId", and the etag is "eTag".
type ExportImportDevice struct {
	ID             string                   `json:"id"`
	ModuleID       string                   `json:"moduleId,omitempty"`
	ETag           string                   `json:"eTag,omitempty"` // identity etag for the ...IfMatchETag modes
	ImportMode     ImportMode               `json:"importMode"`
	Status         DeviceStatus             `json:"status,omitempty"`
	StatusReason   string                   `json:"statusReason,omitempty"`
	Authentication *AuthenticationMechanism `json:"authentication,omitempty"`
	TwinETag       string                   `json:"twinETag,omitempty"` // twin etag for updateTwinIfMatchETag
	Tags           TwinCollection           `json:"tags,omitempty"`
	Properties     *TwinProperties          `json:"properties,omitempty"`
	Capabilities   *DeviceCapabilities      `json:"capabilities,omitempty"`
	DeviceScope    string                   `json:"deviceScope,omitempty"`
	ParentScopes   []string                 `json:"parentScopes,omitempty"`
}

// BulkRegistryOperationResult is the hub's answer to a bulk operation.
type BulkRegistryOperationResult struct {
	IsSuccessful bool                             `json:"isSuccessful"`
	Errors       []DeviceRegistryOperationError   `json:"errors"`
	Warnings     []DeviceRegistryOperationWarning `json:"warnings"`
}

// DeviceRegistryOperationError is the failure of one entry.
type DeviceRegistryOperationError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"` // code name such as "DeviceAlreadyExists", or the number as text
	ErrorStatus string `json:"errorStatus"`
	ModuleID    string `json:"moduleId,omitempty"`
	Operation   string `json:"operation,omitempty"`
}

// UnmarshalJSON accepts errorCode as a string or a number: the spec types it
// as a string and the C# SDK as an enum.
func (e *DeviceRegistryOperationError) UnmarshalJSON(b []byte) error {
	type plain DeviceRegistryOperationError
	var v struct {
		plain
		ErrorCode json.RawMessage `json:"errorCode"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = DeviceRegistryOperationError(v.plain)
	e.ErrorCode = wire.CodeText(v.ErrorCode)
	return nil
}

// DeviceRegistryOperationWarning is a warning about one entry.
type DeviceRegistryOperationWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}

// BulkRegistryOperation creates, updates or deletes many identities in one
// request (POST /devices; the hub takes 1 to 100 entries). Entries created
// or updated without Authentication get the same defaults as CreateDevice.
// When some entries fail the hub answers 400 with the per-entry errors:
// BulkRegistryOperation then returns both that result and an *Error. It is
// never retried.
func (c *Client) BulkRegistryOperation(ctx context.Context, devices []ExportImportDevice) (*BulkRegistryOperationResult, error) {
	if len(devices) == 0 {
		return nil, errorf("BulkRegistryOperation", "no devices")
	}
	body := make([]ExportImportDevice, len(devices))
	for i, d := range devices {
		if d.ID == "" || d.ImportMode == "" {
			return nil, errorf("BulkRegistryOperation", "entry %d needs an id and an import mode", i)
		}
		switch d.ImportMode {
		case ImportCreate, ImportUpdate, ImportUpdateIfMatchETag:
			d.Authentication = normalizeAuth(d.Authentication)
		}
		body[i] = d
	}
	out := new(BulkRegistryOperationResult)
	_, err := c.do(ctx, &call{op: "BulkRegistryOperation", method: http.MethodPost, path: "/devices", body: body}, out)
	if err == nil {
		return out, nil
	}
	if e := asError(err); e != nil && e.StatusCode == http.StatusBadRequest {
		var res BulkRegistryOperationResult
		var probe map[string]json.RawMessage
		if json.Unmarshal(e.Body, &probe) == nil && probe["isSuccessful"] != nil && json.Unmarshal(e.Body, &res) == nil {
			if e.CodeName == "" && e.Code == 0 {
				e.Code, e.CodeName = CodeBulkRegistryOperationFailed, wire.CodeName(CodeBulkRegistryOperationFailed)
			}
			if e.Message == "" || e.Message == http.StatusText(http.StatusBadRequest) {
				e.Message = bulkMessage(&res)
			}
			return &res, err
		}
	}
	return nil, err
}

func bulkMessage(r *BulkRegistryOperationResult) string {
	if len(r.Errors) == 0 {
		return "bulk registry operation failed"
	}
	first := r.Errors[0]
	msg := first.DeviceID + ": " + first.ErrorCode
	if first.ErrorStatus != "" {
		msg += " (" + first.ErrorStatus + ")"
	}
	if n := len(r.Errors) - 1; n > 0 {
		msg += " and " + strconv.Itoa(n) + " more"
	}
	return msg
}

// ImportDevices is BulkRegistryOperation with every entry's mode set to
// mode, for the common all-create or all-delete case.
func (c *Client) ImportDevices(ctx context.Context, mode ImportMode, devices []ExportImportDevice) (*BulkRegistryOperationResult, error) {
	if mode == "" {
		return nil, errors.New("service: ImportDevices: import mode is required")
	}
	withMode := make([]ExportImportDevice, len(devices))
	for i, d := range devices {
		d.ImportMode = mode
		withMode[i] = d
	}
	return c.BulkRegistryOperation(ctx, withMode)
}
