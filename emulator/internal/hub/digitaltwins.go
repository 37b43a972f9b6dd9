// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// IoT Plug and Play digital twins (the service's /digitaltwins routes) are
// a view of device twins: the twin package renders the view and translates
// updates into desired properties; commands are direct methods, named
// "{component}*{command}" for a component's command (the PnP convention the
// device SDKs follow, and what the C# e2e suite's device handler expects,
// DigitalTwinClientE2ETests).

// DigitalTwin is a device's digital twin: the JSON document and the twin
// etag it was rendered at.
type DigitalTwin struct {
	Body json.RawMessage
	ETag string // unquoted, as the twin's etag
}

// GetDigitalTwin returns the digital twin of a device. Digital twins exist
// for devices only.
func (h *Hub) GetDigitalTwin(ctx context.Context, deviceID string) (*DigitalTwin, error) {
	id := Identity{DeviceID: deviceID}
	if err := h.react(ctx, OpGetTwin, id); err != nil {
		return nil, err
	}
	var out *DigitalTwin
	err := h.db.View(func(tx *store.Tx) error {
		r, d, err := mustLoadTwin(tx, id)
		if err != nil {
			return err
		}
		out = &DigitalTwin{Body: d.DigitalTwin(deviceID, r.ModelID), ETag: d.ETag()}
		return nil
	})
	return out, err
}

// UpdateDigitalTwin applies a JSON Patch to a device's digital twin: its
// writable properties become desired properties of the device twin, in one
// write, with If-Match on the twin etag. It returns the twin's new etag.
// A patch with an operation the hub does not accept changes nothing.
func (h *Hub) UpdateDigitalTwin(ctx context.Context, deviceID string, patch []byte, ifMatch string) (string, error) {
	id := Identity{DeviceID: deviceID}
	if err := h.react(ctx, OpUpdateTwin, id); err != nil {
		return "", err
	}
	unlock := h.lockIdentity(id)
	defer unlock()
	var etag string
	var notify, desired []byte
	var version, twinVersion int64
	_, err := h.modifyRecord(id, false, func(_ *store.Tx, r *record) error {
		notify = nil
		d, err := r.doc()
		if err != nil {
			return err
		}
		if !matchETag(ifMatch, d.ETag()) {
			return huberr.PreconditionFailed("The etag %s does not match the twin's current etag %s.", ifMatch, d.ETag())
		}
		if desired, err = d.DigitalTwinPatch(patch); err != nil {
			return twinError(err, false)
		}
		d = d.Clone()
		if notify, err = d.PatchDesired(desired, h.Now()); err != nil {
			return twinError(err, false)
		}
		r.twinDoc = d
		etag, version, twinVersion = d.ETag(), d.DesiredVersion(), d.Version()
		return nil
	})
	if err != nil {
		return "", err
	}
	if notify != nil {
		h.rec.twin(TwinChange{DeviceID: deviceID, Section: "desired", Patch: json.RawMessage(desired),
			Version: twinVersion, Time: h.Now().UTC()})
		h.notifyDesired(id, version, notify)
	}
	h.afterTwinWrite(id)
	return etag, nil
}

// CommandRequest invokes a digital twin command.
type CommandRequest struct {
	Component       string        // "" for a command of the default component
	Command         string        // the command name
	Payload         []byte        // the request body as sent; nil when empty
	ResponseTimeout time.Duration // as for a direct method
	ConnectTimeout  time.Duration
}

// CommandResult is the device's answer to a command.
type CommandResult struct {
	MethodResult
	RequestID string // the x-ms-request-id the hub answers with
}

// InvokeCommand runs a digital twin command as the direct method
// "{component}*{command}" (or "{command}" on the default component).
func (h *Hub) InvokeCommand(ctx context.Context, deviceID string, r CommandRequest) (CommandResult, error) {
	if strings.TrimSpace(r.Command) == "" {
		return CommandResult{}, formB(huberr.ArgumentInvalid("The command name must not be empty."))
	}
	if strings.Contains(r.Component, "*") {
		return CommandResult{}, formB(huberr.ArgumentInvalid("The component name '%s' must not contain '*'.", r.Component))
	}
	m := MethodRequest{Name: r.Command, Payload: r.Payload, ResponseTimeout: r.ResponseTimeout, ConnectTimeout: r.ConnectTimeout}
	if r.Component != "" {
		m.Name = r.Component + "*" + r.Command
	}
	res, err := h.InvokeMethod(ctx, Identity{DeviceID: deviceID}, m)
	if err != nil {
		return CommandResult{}, err
	}
	return CommandResult{MethodResult: res, RequestID: uuid.New()}, nil
}
