// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// Twin is a device or module twin as the service sees it (iothub-protocol.md
// §5.1): GET /twins/{id}, the answer to a twin update and each row of a
// SELECT * query. The adapters render it with encoding/json, so every one
// of those answers carries the same fields in the same form.
type Twin struct {
	DeviceID                  string                       `json:"deviceId"`
	ModuleID                  string                       `json:"moduleId,omitempty"`
	ETag                      string                       `json:"etag"`
	DeviceETag                string                       `json:"deviceEtag"`
	Status                    string                       `json:"status"`
	StatusReason              *string                      `json:"statusReason,omitempty"`
	StatusUpdateTime          Time                         `json:"statusUpdateTime"`
	ConnectionState           string                       `json:"connectionState"`
	LastActivityTime          Time                         `json:"lastActivityTime"`
	CloudToDeviceMessageCount int                          `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string                       `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint               `json:"x509Thumbprint"`
	ModelID                   string                       `json:"modelId"`
	Version                   int64                        `json:"version"`
	Tags                      json.RawMessage              `json:"tags"`
	Properties                TwinProperties               `json:"properties"`
	Configurations            map[string]TwinConfiguration `json:"configurations,omitempty"`
	Capabilities              *Capabilities                `json:"capabilities,omitempty"`
	DeviceScope               string                       `json:"deviceScope,omitempty"`
	ParentScopes              []string                     `json:"parentScopes,omitempty"`
}

// TwinProperties holds a twin's desired and reported sections, each a JSON
// object with its "$version" (and, in the service view, "$metadata"). A
// device's twin GET answers with exactly this (§5.2).
type TwinProperties struct {
	Desired  json.RawMessage `json:"desired"`
	Reported json.RawMessage `json:"reported"`
}

// viewOf builds the service view of a record's twin. The parent device
// record supplies status for a module twin.
func (h *Hub) viewOf(tx *store.Tx, id Identity, r *record, parent *record) (*Twin, error) {
	var tv twin.View
	if r.twinDoc != nil {
		tv = r.twinDoc.View()
	} else {
		// Unchanged since it was read: take the stored sections as they are
		// (queries view every twin; this keeps that cheap).
		var err error
		if tv, err = twin.ReadView(r.Twin); err != nil {
			return nil, err
		}
	}
	v := &Twin{
		DeviceID:   id.DeviceID,
		ModuleID:   id.ModuleID,
		ETag:       tv.ETag,
		ModelID:    r.ModelID,
		Version:    tv.Version,
		Tags:       tv.Tags,
		Properties: TwinProperties{Desired: tv.Desired, Reported: tv.Reported},
	}
	if len(r.Configs) > 0 {
		v.Configurations = make(map[string]TwinConfiguration, len(r.Configs))
		for id, st := range r.Configs {
			v.Configurations[id] = TwinConfiguration{Status: st}
		}
	}
	var auth Authentication
	if r.Device != nil {
		dev := r.Device
		v.DeviceETag = dev.ETag
		v.Status = dev.Status
		v.StatusReason = dev.StatusReason
		v.StatusUpdateTime = dev.StatusUpdatedTime
		auth = dev.Authentication
		caps := dev.Capabilities
		v.Capabilities = &caps
		v.DeviceScope = dev.DeviceScope
		v.ParentScopes = dev.ParentScopes
		v.CloudToDeviceMessageCount = tx.Count(store.C2D, c2dPrefix(id.DeviceID))
	} else {
		v.DeviceETag = r.Module.ETag
		auth = r.Module.Authentication
		if parent != nil && parent.Device != nil {
			v.Status = parent.Device.Status
			v.StatusUpdateTime = parent.Device.StatusUpdatedTime
		}
	}
	v.AuthenticationType = auth.Type
	if auth.X509Thumbprint != nil {
		v.X509Thumbprint = *auth.X509Thumbprint
	}
	if r.Device != nil {
		v.ConnectionState, _, v.LastActivityTime = h.connState(id, r.Device.ConnectionStateUpdatedTime, r.Device.LastActivityTime)
	} else {
		v.ConnectionState, _, v.LastActivityTime = h.connState(id, r.Module.ConnectionStateUpdatedTime, r.Module.LastActivityTime)
	}
	return v, nil
}

// notFound is the hub's error for a missing identity.
func notFound(tx *store.Tx, id Identity) error {
	if id.ModuleID == "" {
		return huberr.DeviceNotFound(id.DeviceID)
	}
	if dev, _ := loadRecord(tx, Identity{DeviceID: id.DeviceID}); dev == nil {
		return huberr.DeviceNotFound(id.DeviceID)
	}
	return huberr.ModuleNotFound(id.DeviceID, id.ModuleID)
}

func (h *Hub) mustExist(id Identity) error {
	return h.db.View(func(tx *store.Tx) error {
		_, err := mustLoad(tx, id)
		return err
	})
}

func loadWithParent(tx *store.Tx, id Identity) (r, parent *record, err error) {
	r, err = loadRecord(tx, id)
	if err != nil || r == nil {
		return nil, nil, err
	}
	if id.ModuleID != "" {
		parent, err = loadRecord(tx, Identity{DeviceID: id.DeviceID})
	}
	return r, parent, err
}

// GetTwin returns the service view of a device or module twin.
func (h *Hub) GetTwin(ctx context.Context, id Identity) (_ *Twin, err error) {
	defer func() { h.metrics.TwinOp("get", err) }()
	if err := h.react(ctx, OpGetTwin, id); err != nil {
		return nil, err
	}
	var out *Twin
	err = h.db.View(func(tx *store.Tx) error {
		r, parent, err := loadWithParent(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(tx, id)
		}
		out, err = h.viewOf(tx, id, r, parent)
		return err
	})
	return out, err
}

// UpdateTwin applies a service PATCH (replace == false) or PUT (replace ==
// true) of tags and desired properties, with If-Match on the twin etag.
// The device, if connected and subscribed, gets the desired notification
// after the change is durable.
func (h *Hub) UpdateTwin(ctx context.Context, id Identity, body []byte, ifMatch string, replace bool) (_ *Twin, err error) {
	defer func() { h.metrics.TwinOp("update", err) }()
	if err := h.react(ctx, OpUpdateTwin, id); err != nil {
		return nil, err
	}
	// Parsed and checked here, before the identity's lock and outside the
	// store's commit, which every other write waits for: a hostile body
	// costs its own request only.
	u, err := twin.ParseServiceUpdate(body)
	if err != nil {
		return nil, twinError(err, false)
	}
	// A section set to null is replaced by {}, in a PATCH as in a PUT.
	tags, desired := u.Tags, u.Desired
	hasTags, hasDesired := tags != nil, desired != nil
	replaceTags, replaceDesired := replace || u.ClearTags, replace || u.ClearDesired
	unlock := h.lockIdentity(id)
	defer unlock()
	var out *Twin
	var notify []byte
	var version, twinVersion int64
	_, err = h.modifyRecord(id, false, func(tx *store.Tx, r *record) error {
		notify = nil
		var parent *record
		if id.ModuleID != "" {
			var err error
			if parent, err = loadRecord(tx, Identity{DeviceID: id.DeviceID}); err != nil {
				return err
			}
		}
		d, err := r.doc()
		if err != nil {
			return err
		}
		if !matchETag(ifMatch, d.ETag()) {
			return huberr.PreconditionFailed("The etag %s does not match the twin's current etag %s.", ifMatch, d.ETag())
		}
		d = d.Clone()
		now := h.Now()
		if err := d.ApplyTags(&u, replace, now); err != nil {
			return twinError(err, false)
		}
		if notify, err = d.ApplyDesired(&u, replace, now); err != nil {
			return twinError(err, false)
		}
		r.twinDoc = d
		version, twinVersion = d.DesiredVersion(), d.Version()
		out, err = h.viewOf(tx, id, r, parent)
		return err
	})
	if err != nil {
		return nil, err
	}
	now := h.Now().UTC()
	if hasTags {
		h.rec.twin(TwinChange{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Section: "tags", Replace: replaceTags, Patch: tags, Version: twinVersion, Time: now})
	}
	if hasDesired {
		h.rec.twin(TwinChange{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Section: "desired", Replace: replaceDesired, Patch: desired, Version: twinVersion, Time: now})
	}
	if notify != nil {
		if c := h.conn(id); c != nil && c.desired.Load() {
			c.post(func() {
				h.metrics.MessageOut("desired")
				if err := c.session.SendDesired(version, notify); err != nil {
					h.log.Debug("desired notification not delivered", "identity", id.String(), "err", err)
				}
			})
		}
	}
	h.afterTwinWrite(id)
	return out, nil
}

// DeviceTwin returns the device's view of its twin (MQTT twin GET): the
// desired and reported sections without $metadata (§5.2).
func (h *Hub) DeviceTwin(id Identity) (_ TwinProperties, err error) {
	defer func() { h.metrics.TwinOp("device_get", err) }()
	if err := h.react(context.Background(), OpDeviceTwin, id); err != nil {
		return TwinProperties{}, err
	}
	var out TwinProperties
	err = h.db.View(func(tx *store.Tx) error {
		_, d, err := mustLoadTwin(tx, id)
		if err != nil {
			return err
		}
		out.Desired, out.Reported = d.DeviceSections()
		return nil
	})
	return out, err
}

// PatchReported merges a device's reported-properties patch and returns the
// new reported $version once the change is durable. baseVersion, when
// non-zero, must equal the current reported $version (412 otherwise).
func (h *Hub) PatchReported(id Identity, patch []byte, baseVersion int64) (_ int64, err error) {
	defer func() { h.metrics.TwinOp("patch_reported", err) }()
	if err := h.react(context.Background(), OpPatchReported, id); err != nil {
		return 0, err
	}
	patch = DeviceJSON(patch)
	// Parsed and checked before the lock and the commit (see UpdateTwin).
	p, err := twin.ParseReportedPatch(patch)
	if err != nil {
		return 0, twinError(err, true)
	}
	unlock := h.lockIdentity(id)
	defer unlock()
	var version, twinVersion int64
	// Only the twin changes: modifyTwin leaves the rest of the record as
	// stored, undecoded.
	err = h.modifyTwin(id, func(d *twin.Doc) error {
		if baseVersion != 0 && baseVersion != d.ReportedVersion() {
			return huberr.PreconditionFailed("The reported properties version %d does not match the current version %d.", baseVersion, d.ReportedVersion())
		}
		var err error
		if version, err = d.ApplyReported(p, h.Now()); err != nil {
			return twinError(err, true)
		}
		twinVersion = d.Version()
		return nil
	})
	if err == nil {
		h.rec.twin(TwinChange{DeviceID: id.DeviceID, ModuleID: id.ModuleID, Section: "reported",
			Patch: append(json.RawMessage(nil), patch...), Version: twinVersion, Time: h.Now().UTC()})
		h.afterTwinWrite(id)
	}
	return version, err
}

// twinError maps the twin engine's validation errors to the hub's codes:
// 400 ArgumentInvalid, except a device's reported section over its size
// limit, which the hub answers with 403 / 403100 (iothub-protocol.md §3.8).
func twinError(err error, device bool) error {
	switch {
	case errors.Is(err, twin.ErrTooLarge) && device:
		return huberr.ReportedTooLarge("%s", err.Error())
	case errors.Is(err, twin.ErrInvalid), errors.Is(err, twin.ErrTooLarge):
		return huberr.ArgumentInvalid("%s", err.Error())
	}
	return fmt.Errorf("twin: %w", err)
}

// setModelID records the model id a device announced when it connected.
func (h *Hub) setModelID(id Identity, modelID string) {
	unlock := h.lockIdentity(id)
	defer unlock()
	_, err := h.modifyRecord(id, true, func(_ *store.Tx, r *record) error {
		if r.ModelID == modelID {
			return errNoChange
		}
		r.ModelID = modelID
		return nil
	})
	if err != nil {
		h.log.Warn("could not record model id", "identity", id.String(), "err", err)
		return
	}
	h.afterTwinWrite(id)
}
