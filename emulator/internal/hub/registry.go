// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
	"github.com/iothubemulator/iothub/internal/sas"
)

// maxListDevices is the legacy GET /devices cap.
const maxListDevices = 1000

// edgeScopePrefix starts every deviceScope the hub assigns to an edge device.
const edgeScopePrefix = "ms-azure-iot-edge://"

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
	}
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

// newAuthentication validates a requested authentication block and fills in
// what the hub generates: keys left empty on a SAS identity. On update,
// prev supplies keys the request leaves empty.
func newAuthentication(in Authentication, prev *Authentication) (Authentication, error) {
	typ := in.Type
	if typ == "" {
		typ = AuthSAS
		if prev != nil && in.SymmetricKey == nil && in.X509Thumbprint == nil {
			typ = prev.Type
		}
	}
	out := Authentication{Type: typ}
	switch typ {
	case AuthSAS:
		k := SymmetricKey{}
		if in.SymmetricKey != nil {
			k = *in.SymmetricKey
		}
		if prev != nil && prev.SymmetricKey != nil {
			if k.PrimaryKey == "" {
				k.PrimaryKey = prev.SymmetricKey.PrimaryKey
			}
			if k.SecondaryKey == "" {
				k.SecondaryKey = prev.SymmetricKey.SecondaryKey
			}
		}
		if k.PrimaryKey == "" {
			k.PrimaryKey = sas.GenerateKey()
		}
		if k.SecondaryKey == "" {
			k.SecondaryKey = sas.GenerateKey()
		}
		if err := validateKey("primary", k.PrimaryKey); err != nil {
			return out, err
		}
		if err := validateKey("secondary", k.SecondaryKey); err != nil {
			return out, err
		}
		out.SymmetricKey = &k
		out.X509Thumbprint = &X509Thumbprint{}
	case AuthSelfSigned:
		// The registry model asks for at least one of the two thumbprints;
		// an empty one means none, as null does.
		var t X509Thumbprint
		if in.X509Thumbprint != nil {
			var err error
			if t.PrimaryThumbprint, err = normalizeThumbprint(in.X509Thumbprint.PrimaryThumbprint); err != nil {
				return out, err
			}
			if t.SecondaryThumbprint, err = normalizeThumbprint(in.X509Thumbprint.SecondaryThumbprint); err != nil {
				return out, err
			}
		}
		if t.PrimaryThumbprint == nil && t.SecondaryThumbprint == nil {
			return out, huberr.ArgumentInvalid("A selfSigned device needs a primary or a secondary thumbprint.")
		}
		out.X509Thumbprint = &t
		out.SymmetricKey = &SymmetricKey{}
	case AuthCA, AuthNone:
		out.X509Thumbprint = &X509Thumbprint{}
		out.SymmetricKey = &SymmetricKey{}
	default:
		return out, huberr.ArgumentInvalid("Authentication type '%s' is not valid; use sas, selfSigned or certificateAuthority.", typ)
	}
	return out, nil
}

// normalizeThumbprint returns a thumbprint in upper-case hex without
// colons, nil for none.
func normalizeThumbprint(p *string) (*string, error) {
	if p == nil || *p == "" {
		return nil, nil
	}
	v := strings.ToUpper(strings.ReplaceAll(*p, ":", ""))
	if !isThumbprint(v) {
		return nil, huberr.ArgumentInvalid("Thumbprint '%s' is not a SHA-1 or SHA-256 hex digest.", *p)
	}
	return &v, nil
}

func isThumbprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// applyScopes applies the hub's edge rules: an edge device owns the scope
// ms-azure-iot-edge://{id}-{generationId}, which the caller cannot change,
// and may name one parent edge scope (nested edge); a device that names a
// deviceScope (its parent) and no parentScopes gets parentScopes
// [deviceScope]. Other scopes are stored as given: the hub does not check
// them against the registry (the C# SDK's end-to-end tests, run against
// real hubs, register devices with scopes such as "someScope<guid>":
// RegistryManagerE2ETests.RegistryManager_BulkLifecycle).
func applyScopes(d *Device) error {
	if d.Capabilities.IotEdge {
		d.DeviceScope = edgeScopePrefix + d.DeviceID + "-" + d.GenerationID
		if len(d.ParentScopes) > 1 {
			return huberr.ArgumentInvalid("An edge device may have at most one parent scope.")
		}
		for _, p := range d.ParentScopes {
			if p == d.DeviceScope {
				return huberr.ArgumentInvalid("An edge device cannot be its own parent.")
			}
		}
		return nil
	}
	if len(d.ParentScopes) == 0 && d.DeviceScope != "" {
		d.ParentScopes = []string{d.DeviceScope}
	}
	return nil
}

// checkScopes applies the hub's rules for scopes set through PUT
// /devices/{id}: a leaf device's deviceScope is empty or the scope of an
// edge device of this hub, and its parentScopes, when given, hold exactly
// that scope; an edge device's parent scope is another edge device's scope.
// The official Node e2e suite expects a leaf update to an arbitrary scope
// to fail (registry.js, "Can create an edge and device scope
// relationship"), and the C# e2e suite nests edge devices this way
// (DevicesClientE2ETests.DevicesClient_AddAndRemoveDeviceWithScope). A
// scope that the device already had passes unchecked, so that an update
// that sends the device back as read still works after its edge device was
// deleted. prev is the device before the update, nil on create.
func checkScopes(tx *store.Tx, d *Device, prev *Device) error {
	if d.Capabilities.IotEdge {
		for _, p := range d.ParentScopes {
			if prev != nil && slices.Contains(prev.ParentScopes, p) {
				continue
			}
			if !isEdgeScope(tx, p) {
				return huberr.ArgumentInvalid("The parent scope '%s' is not the deviceScope of an edge device of this hub.", p)
			}
		}
		return nil
	}
	if d.DeviceScope == "" && len(d.ParentScopes) == 1 {
		// Only parentScopes given: the parent is the device's scope.
		d.DeviceScope = d.ParentScopes[0]
	}
	if d.DeviceScope == "" && len(d.ParentScopes) > 0 {
		return huberr.ArgumentInvalid("A device that is not an edge device may have one parent scope; got %d.", len(d.ParentScopes))
	}
	if len(d.ParentScopes) > 1 || len(d.ParentScopes) == 1 && d.ParentScopes[0] != d.DeviceScope {
		return huberr.ArgumentInvalid("The parentScopes of a device that is not an edge device must be [deviceScope]; got %v with deviceScope '%s'.", d.ParentScopes, d.DeviceScope)
	}
	if d.DeviceScope == "" || prev != nil && prev.DeviceScope == d.DeviceScope {
		return nil
	}
	if !isEdgeScope(tx, d.DeviceScope) {
		return huberr.ArgumentInvalid("The deviceScope '%s' is not the scope of an edge device of this hub.", d.DeviceScope)
	}
	return nil
}

// isEdgeScope reports whether scope is the deviceScope of an edge device in
// the registry: ms-azure-iot-edge://{deviceId}-{generationId}.
func isEdgeScope(tx *store.Tx, scope string) bool {
	rest, ok := strings.CutPrefix(scope, edgeScopePrefix)
	i := strings.LastIndexByte(rest, '-')
	if !ok || i <= 0 {
		return false
	}
	r, err := loadRecord(tx, Identity{DeviceID: rest[:i]})
	return err == nil && r != nil && r.Device != nil && r.Device.Capabilities.IotEdge && r.Device.DeviceScope == scope
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
			if err := json.Unmarshal(v, &r); err != nil {
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
	return nil
}

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
			if err := json.Unmarshal(v, &r); err != nil {
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
	return nil
}

// RegistryStatistics is GET /statistics/devices.
type RegistryStatistics struct {
	TotalDeviceCount    int64 `json:"totalDeviceCount"`
	EnabledDeviceCount  int64 `json:"enabledDeviceCount"`
	DisabledDeviceCount int64 `json:"disabledDeviceCount"`
}

// ServiceStatistics is GET /statistics/service.
type ServiceStatistics struct {
	ConnectedDeviceCount int64 `json:"connectedDeviceCount"`
}

// RegistryStats counts devices by status.
func (h *Hub) RegistryStats(ctx context.Context) (RegistryStatistics, error) {
	var s RegistryStatistics
	err := h.db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Devices, "", "", func(k string, v []byte) error {
			var r struct {
				Device struct {
					Status string `json:"status"`
				} `json:"device"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			s.TotalDeviceCount++
			if r.Device.Status == StatusDisabled {
				s.DisabledDeviceCount++
			} else {
				s.EnabledDeviceCount++
			}
			return nil
		})
	})
	return s, err
}

// ServiceStats counts connected devices (modules are not counted).
func (h *Hub) ServiceStats() ServiceStatistics {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for id := range h.conns {
		if id.ModuleID == "" {
			n++
		}
	}
	return ServiceStatistics{ConnectedDeviceCount: n}
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
