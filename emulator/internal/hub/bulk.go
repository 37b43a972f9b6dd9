// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Bulk registry limits (iothub-protocol.md §10).
const maxBulkDevices = 100

// Import modes of POST /devices (iothub-protocol.md §6.2).
const (
	ImportCreate                = "create"
	ImportUpdate                = "update"
	ImportUpdateIfMatchETag     = "updateIfMatchETag"
	ImportDelete                = "delete"
	ImportDeleteIfMatchETag     = "deleteIfMatchETag"
	ImportUpdateTwin            = "updateTwin"
	ImportUpdateTwinIfMatchETag = "updateTwinIfMatchETag"
)

// ImportDevice is one item of a bulk registry request (ExportImportDevice).
type ImportDevice struct {
	ID             string          `json:"id"`
	ModuleID       string          `json:"moduleId,omitempty"`
	ETag           string          `json:"eTag,omitempty"`
	ImportMode     string          `json:"importMode"`
	Status         string          `json:"status,omitempty"`
	StatusReason   *string         `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
	TwinETag       string          `json:"twinETag,omitempty"`
	Tags           json.RawMessage `json:"tags,omitempty"`
	Properties     *struct {
		Desired json.RawMessage `json:"desired,omitempty"`
	} `json:"properties,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	DeviceScope  string        `json:"deviceScope,omitempty"`
	ParentScopes []string      `json:"parentScopes,omitempty"`
}

// BulkError is a per-item failure of a bulk request.
type BulkError struct {
	DeviceID    string `json:"deviceId"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
	Operation   string `json:"operation,omitempty"`
}

// BulkResult is the answer to a bulk registry request.
type BulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []BulkError `json:"errors"`
	Warnings     []BulkError `json:"warnings"`
}

// BulkImport applies up to 100 registry operations. Each item succeeds or
// fails on its own; failures are reported per item, as the hub does.
func (h *Hub) BulkImport(ctx context.Context, items []ImportDevice) (*BulkResult, error) {
	if len(items) == 0 {
		return nil, huberr.ArgumentInvalid("A bulk registry request needs at least one device.")
	}
	if len(items) > maxBulkDevices {
		return nil, huberr.TooManyDevices("A bulk registry request may hold at most %d devices; it has %d.", maxBulkDevices, len(items))
	}
	seen := map[Identity]bool{}
	for _, it := range items {
		id := Identity{DeviceID: it.ID, ModuleID: it.ModuleID}
		if seen[id] {
			return nil, huberr.DeviceDefinedMultipleTimes(id.String())
		}
		seen[id] = true
	}
	res := &BulkResult{IsSuccessful: true, Errors: []BulkError{}, Warnings: []BulkError{}}
	for _, it := range items {
		if err := h.importOne(ctx, it); err != nil {
			he := huberr.As(err)
			res.IsSuccessful = false
			res.Errors = append(res.Errors, BulkError{DeviceID: it.ID, ModuleID: it.ModuleID,
				ErrorCode: he.Name, ErrorStatus: he.Message, Operation: it.ImportMode})
		}
	}
	return res, nil
}

// importModes are the import modes in their canonical spelling.
var importModes = []string{ImportCreate, ImportUpdate, ImportUpdateIfMatchETag, ImportDelete,
	ImportDeleteIfMatchETag, ImportUpdateTwin, ImportUpdateTwinIfMatchETag}

// canonicalImportMode matches an import mode case-insensitively: Node's
// Registry sends 'Update', 'UpdateIfMatchETag', 'Delete' and
// 'DeleteIfMatchETag' (azure-iothub registry.ts), C# and Python the
// camelCase names. Unknown modes are returned unchanged.
func canonicalImportMode(m string) string {
	for _, c := range importModes {
		if strings.EqualFold(m, c) {
			return c
		}
	}
	return m
}

func (h *Hub) importOne(ctx context.Context, it ImportDevice) error {
	id := Identity{DeviceID: it.ID, ModuleID: it.ModuleID}
	it.ImportMode = canonicalImportMode(it.ImportMode)
	etagOrStar := func(conditional bool, etag string) (string, error) {
		if !conditional {
			return "*", nil
		}
		if etag == "" {
			return "", huberr.ArgumentInvalid("importMode %s needs an etag.", it.ImportMode)
		}
		return etag, nil
	}
	switch it.ImportMode {
	case ImportCreate, ImportUpdate, ImportUpdateIfMatchETag:
		ifMatch := ""
		if it.ImportMode != ImportCreate {
			m, err := etagOrStar(it.ImportMode == ImportUpdateIfMatchETag, it.ETag)
			if err != nil {
				return err
			}
			ifMatch = m
			// "update" registers the device when it does not exist yet.
			if it.ImportMode == ImportUpdate && h.mustExist(id) != nil {
				ifMatch = ""
			}
		}
		if err := h.importIdentity(ctx, it, ifMatch); err != nil {
			return err
		}
		return h.importTwin(ctx, id, it, "*")
	case ImportDelete, ImportDeleteIfMatchETag:
		m, err := etagOrStar(it.ImportMode == ImportDeleteIfMatchETag, it.ETag)
		if err != nil {
			return err
		}
		if id.ModuleID != "" {
			return h.DeleteModule(ctx, id.DeviceID, id.ModuleID, m)
		}
		return h.DeleteDevice(ctx, id.DeviceID, m)
	case ImportUpdateTwin, ImportUpdateTwinIfMatchETag:
		m, err := etagOrStar(it.ImportMode == ImportUpdateTwinIfMatchETag, it.TwinETag)
		if err != nil {
			return err
		}
		return h.importTwin(ctx, id, it, m)
	case "":
		return huberr.ArgumentNull("importMode is required.")
	default:
		return huberr.ArgumentInvalid("importMode '%s' is not valid.", it.ImportMode)
	}
}

func (h *Hub) importIdentity(ctx context.Context, it ImportDevice, ifMatch string) error {
	var auth Authentication
	if it.Authentication != nil {
		auth = *it.Authentication
	}
	if it.ModuleID != "" {
		_, err := h.PutModule(ctx, &Module{DeviceID: it.ID, ModuleID: it.ModuleID, Authentication: auth}, ifMatch)
		return err
	}
	d := &Device{DeviceID: it.ID, Status: it.Status, StatusReason: it.StatusReason, Authentication: auth,
		DeviceScope: it.DeviceScope, ParentScopes: it.ParentScopes}
	if it.Capabilities != nil {
		d.Capabilities = *it.Capabilities
	}
	// Bulk operations store scopes as given: the C# e2e suite, run against
	// real hubs, bulk-creates a leaf whose scope names no edge device
	// (DevicesClientE2ETests.DevicesClient_AddDevicesAsync_Works).
	_, err := h.putDevice(ctx, d, ifMatch, false)
	return err
}

func (h *Hub) importTwin(ctx context.Context, id Identity, it ImportDevice, ifMatch string) error {
	patch := map[string]any{}
	if len(it.Tags) > 0 && string(it.Tags) != "null" {
		patch["tags"] = it.Tags
	}
	if it.Properties != nil && len(it.Properties.Desired) > 0 && string(it.Properties.Desired) != "null" {
		patch["properties"] = map[string]any{"desired": it.Properties.Desired}
	}
	if len(patch) == 0 {
		return nil
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return errors.New("encode twin patch")
	}
	_, err = h.UpdateTwin(ctx, id, b, ifMatch, false)
	return err
}
