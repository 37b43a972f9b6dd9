// SPDX-License-Identifier: MIT

package hub

import (
	"slices"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// edgeScopePrefix starts every deviceScope the hub assigns to an edge device.
const edgeScopePrefix = "ms-azure-iot-edge://"

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
