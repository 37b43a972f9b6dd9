// SPDX-License-Identifier: MIT

package hub

import (
	"context"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// PutModule creates (ifMatch == "") or updates a module identity.
func (h *Hub) PutModule(ctx context.Context, in *Module, ifMatch string) (*Module, error) {
	if err := ValidateDeviceID(in.DeviceID); err != nil {
		return nil, err
	}
	if err := ValidateModuleID(in.ModuleID); err != nil {
		return nil, err
	}
	id := Identity{DeviceID: in.DeviceID, ModuleID: in.ModuleID}
	if err := h.react(ctx, OpRegistry, id); err != nil {
		return nil, err
	}
	unlock := h.lockIdentity(id)
	defer unlock()
	var out *Module
	err := h.db.Update(func(tx *store.Tx) error {
		dev, err := loadRecord(tx, Identity{DeviceID: id.DeviceID})
		if err != nil {
			return err
		}
		if dev == nil {
			return huberr.DeviceNotFound(id.DeviceID)
		}
		r, err := loadRecord(tx, id)
		if err != nil {
			return err
		}
		var prev *Authentication
		if ifMatch == "" {
			if r != nil {
				return huberr.ModuleAlreadyExists(id.DeviceID, id.ModuleID)
			}
			gen, err := nextGeneration(tx)
			if err != nil {
				return err
			}
			r = &record{Module: &Module{ModuleID: id.ModuleID, DeviceID: id.DeviceID, GenerationID: gen,
				ConnectionState: Disconnected}, twinDoc: twin.New(h.Now())}
		} else {
			if r == nil {
				return huberr.ModuleNotFound(id.DeviceID, id.ModuleID)
			}
			if !matchETag(ifMatch, r.Module.ETag) {
				return huberr.PreconditionFailed("The etag %s does not match the module's current etag.", ifMatch)
			}
			prev = &r.Module.Authentication
		}
		auth, err := newAuthentication(in.Authentication, prev)
		if err != nil {
			return err
		}
		r.Module.Authentication = auth
		r.Module.ManagedBy = in.ManagedBy
		r.ETagSeq++
		r.Module.ETag = identityETag(r.ETagSeq)
		if err := saveRecord(tx, id, r); err != nil {
			return err
		}
		cp := *r.Module
		out = &cp
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.afterTwinWrite(id)
	h.decorate(id, nil, out)
	return out, nil
}

// GetModule returns a module identity.
func (h *Hub) GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error) {
	id := Identity{DeviceID: deviceID, ModuleID: moduleID}
	var out *Module
	err := h.db.View(func(tx *store.Tx) error {
		r, err := mustLoad(tx, id)
		if err != nil {
			return err
		}
		out = r.Module
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.decorate(id, nil, out)
	return out, nil
}

// ListModules returns a device's modules in id order.
func (h *Hub) ListModules(ctx context.Context, deviceID string) ([]*Module, error) {
	out := []*Module{}
	err := h.db.View(func(tx *store.Tx) error {
		if dev, err := loadRecord(tx, Identity{DeviceID: deviceID}); err != nil {
			return err
		} else if dev == nil {
			return huberr.DeviceNotFound(deviceID)
		}
		return tx.ForEach(store.Modules, deviceID+"\x00", "", func(k string, v []byte) error {
			var r record
			if err := unmarshalRecord(v, &r); err != nil {
				return err
			}
			out = append(out, r.Module)
			return nil
		})
	})
	for _, m := range out {
		h.decorate(Identity{DeviceID: deviceID, ModuleID: m.ModuleID}, nil, m)
	}
	return out, err
}

// DeleteModule deletes a module identity and its twin.
func (h *Hub) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	id := Identity{DeviceID: deviceID, ModuleID: moduleID}
	if err := h.react(ctx, OpRegistry, id); err != nil {
		return err
	}
	unlock := h.lockIdentity(id)
	defer unlock()
	err := h.db.Update(func(tx *store.Tx) error {
		r, err := mustLoad(tx, id)
		if err != nil {
			return err
		}
		if !matchETag(ifMatch, r.Module.ETag) {
			return huberr.PreconditionFailed("The etag %s does not match the module's current etag.", ifMatch)
		}
		return tx.Delete(store.Modules, id.key())
	})
	if err != nil {
		return err
	}
	h.dropIdentity(id)
	h.mu.Lock()
	delete(h.runtime, id)
	h.mu.Unlock()
	h.forgetIdentities(func(x Identity) bool { return x == id })
	return nil
}
