// SPDX-License-Identifier: MIT

package hub

import (
	"context"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

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
			if _, err := unmarshalRest(v, &r); err != nil {
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
