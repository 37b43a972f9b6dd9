// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// maxListDevices is the legacy GET /devices cap.
const maxListDevices = 1000

// matchETag reports whether an If-Match value accepts current. An empty
// value or * (quoted or not) matches anything; W/ prefixes and quotes are
// ignored.
func matchETag(ifMatch, current string) bool {
	v := strings.TrimSpace(ifMatch)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	return v == "" || v == "*" || v == current
}

// PutDevice creates the device (ifMatch == "") or updates it (ifMatch set:
// "*" or its etag), as PUT /devices/{id} does. Edge scopes must name edge
// devices of this hub (checkScopes).
func (h *Hub) PutDevice(ctx context.Context, in *Device, ifMatch string) (*Device, error) {
	return h.putDevice(ctx, in, ifMatch, true)
}

// putDevice is PutDevice; strictScopes false skips checkScopes, as bulk
// registry operations do.
func (h *Hub) putDevice(ctx context.Context, in *Device, ifMatch string, strictScopes bool) (*Device, error) {
	if err := ValidateDeviceID(in.DeviceID); err != nil {
		return nil, err
	}
	id := Identity{DeviceID: in.DeviceID}
	if err := h.react(ctx, OpRegistry, id); err != nil {
		return nil, err
	}
	unlock := h.lockIdentity(id)
	defer unlock()
	var out *Device
	var disabled bool
	err := h.db.Update(func(tx *store.Tx) error {
		disabled = false
		r, err := loadRecord(tx, id)
		if err != nil {
			return err
		}
		if ifMatch == "" {
			if r != nil {
				return huberr.DeviceAlreadyExists(id.DeviceID)
			}
			out, err = h.createDevice(tx, in, strictScopes)
			return err
		}
		if r == nil {
			return huberr.DeviceNotFound(id.DeviceID)
		}
		if !matchETag(ifMatch, r.Device.ETag) {
			return huberr.PreconditionFailed("The etag %s does not match the device's current etag.", ifMatch)
		}
		wasEnabled := r.Device.Status == StatusEnabled
		if out, err = h.updateDevice(tx, r, in, strictScopes); err != nil {
			return err
		}
		disabled = wasEnabled && out.Status == StatusDisabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	if disabled {
		h.dropDevice(id.DeviceID)
		h.forgetDevice(id.DeviceID)
	}
	h.afterTwinWrite(id)
	h.decorate(id, out, nil)
	return out, nil
}

func (h *Hub) createDevice(tx *store.Tx, in *Device, strictScopes bool) (*Device, error) {
	now := h.Now()
	d := &Device{
		DeviceID:          in.DeviceID,
		Status:            in.Status,
		StatusReason:      in.StatusReason,
		Capabilities:      in.Capabilities,
		DeviceScope:       in.DeviceScope,
		ParentScopes:      in.ParentScopes,
		ConnectionState:   Disconnected,
		StatusUpdatedTime: Time{},
	}
	if d.Status == "" {
		d.Status = StatusEnabled
	}
	if err := checkStatus(d); err != nil {
		return nil, err
	}
	auth, err := newAuthentication(in.Authentication, nil)
	if err != nil {
		return nil, err
	}
	d.Authentication = auth
	gen, err := nextGeneration(tx)
	if err != nil {
		return nil, err
	}
	d.GenerationID = gen
	if err := applyScopes(d); err != nil {
		return nil, err
	}
	if strictScopes {
		if err := checkScopes(tx, d, nil); err != nil {
			return nil, err
		}
	}
	r := &record{Device: d, ETagSeq: 1, twinDoc: twin.New(now)}
	d.ETag = identityETag(r.ETagSeq)
	if err := saveRecord(tx, Identity{DeviceID: d.DeviceID}, r); err != nil {
		return nil, err
	}
	cp := *d
	return &cp, nil
}

func (h *Hub) updateDevice(tx *store.Tx, r *record, in *Device, strictScopes bool) (*Device, error) {
	d := r.Device
	prev := *d
	now := h.Now()
	status := in.Status
	if status == "" {
		status = d.Status
	}
	if status != d.Status {
		d.StatusUpdatedTime = Time{now}
	}
	d.Status = status
	d.StatusReason = in.StatusReason
	if err := checkStatus(d); err != nil {
		return nil, err
	}
	auth, err := newAuthentication(in.Authentication, &d.Authentication)
	if err != nil {
		return nil, err
	}
	d.Authentication = auth
	d.Capabilities = in.Capabilities
	d.DeviceScope = in.DeviceScope
	d.ParentScopes = in.ParentScopes
	if err := applyScopes(d); err != nil {
		return nil, err
	}
	if strictScopes {
		if err := checkScopes(tx, d, &prev); err != nil {
			return nil, err
		}
	}
	r.ETagSeq++
	d.ETag = identityETag(r.ETagSeq)
	if err := saveRecord(tx, Identity{DeviceID: d.DeviceID}, r); err != nil {
		return nil, err
	}
	cp := *d
	return &cp, nil
}

func checkStatus(d *Device) error {
	if d.Status != StatusEnabled && d.Status != StatusDisabled {
		return huberr.ArgumentInvalid("Status '%s' is not valid; use 'enabled' or 'disabled'.", d.Status)
	}
	if d.StatusReason != nil && len(*d.StatusReason) > 128 {
		return huberr.ArgumentInvalid("statusReason is %d characters long; the maximum is 128.", len(*d.StatusReason))
	}
	return nil
}

// GetDevice returns a device identity.
func (h *Hub) GetDevice(ctx context.Context, id string) (*Device, error) {
	var out *Device
	err := h.db.View(func(tx *store.Tx) error {
		r, err := loadRecord(tx, Identity{DeviceID: id})
		if err != nil {
			return err
		}
		if r == nil {
			return huberr.DeviceNotFound(id)
		}
		out = r.Device
		out.CloudToDeviceMessageCount = tx.Count(store.C2D, id+"\x00")
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.decorate(Identity{DeviceID: id}, out, nil)
	return out, nil
}

// ListDevices returns up to top devices (all, up to 1000, when top <= 0) in id order.
func (h *Hub) ListDevices(ctx context.Context, top int) ([]*Device, error) {
	if top <= 0 || top > maxListDevices {
		top = maxListDevices
	}
	var out []*Device
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Devices, "", "", func(k string, v []byte) error {
			var r record
			if err := unmarshalRecord(v, &r); err != nil {
				return err
			}
			r.Device.CloudToDeviceMessageCount = tx.Count(store.C2D, r.Device.DeviceID+"\x00")
			out = append(out, r.Device)
			if len(out) >= top {
				return store.ErrStop
			}
			return nil
		})
	})
	for _, d := range out {
		h.decorate(Identity{DeviceID: d.DeviceID}, d, nil)
	}
	return out, err
}

// DeleteDevice deletes a device with its twin, modules and queued messages.
func (h *Hub) DeleteDevice(ctx context.Context, id, ifMatch string) error {
	if err := h.react(ctx, OpRegistry, Identity{DeviceID: id}); err != nil {
		return err
	}
	unlock := h.lockIdentity(Identity{DeviceID: id})
	defer unlock()
	err := h.db.Update(func(tx *store.Tx) error {
		r, err := loadRecord(tx, Identity{DeviceID: id})
		if err != nil {
			return err
		}
		if r == nil {
			return huberr.DeviceNotFound(id)
		}
		if !matchETag(ifMatch, r.Device.ETag) {
			return huberr.PreconditionFailed("The etag %s does not match the device's current etag.", ifMatch)
		}
		// An edge device may be deleted while devices still name it as their
		// parent, as on the hub (C# RegistryManagerE2ETests.
		// RegistryManager_AddAndRemoveDeviceWithScope deletes a parent edge
		// before its nested child).
		if err := tx.Delete(store.Devices, id); err != nil {
			return err
		}
		if err := dropDeviceFileUploads(tx, id); err != nil {
			return err
		}
		if err := dropDeviceFeedback(tx, id); err != nil {
			return err
		}
		var keys []string
		_ = tx.ForEach(store.Modules, id+"\x00", "", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		_ = tx.ForEach(store.C2D, id+"\x00", "", func(k string, _ []byte) error { keys = append(keys, "c2d:"+k); return nil })
		for _, k := range keys {
			b := store.Modules
			if rest, ok := strings.CutPrefix(k, "c2d:"); ok {
				b, k = store.C2D, rest
			}
			if err := tx.Delete(b, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	h.dropDevice(id)
	h.mu.Lock()
	for k := range h.runtime {
		if k.DeviceID == id {
			delete(h.runtime, k)
		}
	}
	h.mu.Unlock()
	h.forgetDevice(id)
	return nil
}

// decorate fills the runtime fields (connection state and activity) that
// live in memory rather than in the store.
// Without runtime state (nothing connected since the start) the identity
// is Disconnected, with the times saved when its last connection ended.
func (h *Hub) decorate(id Identity, d *Device, m *Module) {
	if d != nil {
		d.ConnectionState, d.ConnectionStateUpdatedTime, d.LastActivityTime = h.connState(id, d.ConnectionStateUpdatedTime, d.LastActivityTime)
	}
	if m != nil {
		m.ConnectionState, m.ConnectionStateUpdatedTime, m.LastActivityTime = h.connState(id, m.ConnectionStateUpdatedTime, m.LastActivityTime)
	}
}

// connState is an identity's connection state and times: the live ones
// when it has connected since the start, else Disconnected with the stored
// times of its last connection.
func (h *Hub) connState(id Identity, storedUpdated, storedActivity Time) (state string, updated, activity Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rt := h.runtime[id]
	if rt == nil {
		return Disconnected, storedUpdated, storedActivity
	}
	state = rt.state
	if state == "" {
		state = Disconnected
	}
	return state, Time{rt.stateUpdated}, Time{rt.lastActivity}
}
