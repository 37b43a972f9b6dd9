// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/sas"
)

// Direct state access for tests: these methods reach the hub without the
// wire. They are emulator-only; code that must also run against a real hub
// uses the service package instead.

// Device is a device identity as the registry API returns it.
type Device = hub.Device

// Module is a module identity as the registry API returns it.
type Module = hub.Module

// Message is a recorded device-to-cloud message.
type Message = hub.Message

// CreateDevice registers a device with generated SAS keys and returns its
// connection string (HostName carries the MQTT port when it is not 8883).
func (s *Server) CreateDevice(deviceID string) (string, error) {
	d, err := s.hub.PutDevice(context.Background(), &hub.Device{DeviceID: deviceID}, "")
	if err != nil {
		return "", err
	}
	return s.deviceConnectionString(d.DeviceID, "", d.Authentication.SymmetricKey.PrimaryKey), nil
}

// CreateModule registers a module with generated SAS keys on an existing
// device and returns its connection string.
func (s *Server) CreateModule(deviceID, moduleID string) (string, error) {
	m, err := s.hub.PutModule(context.Background(), &hub.Module{DeviceID: deviceID, ModuleID: moduleID}, "")
	if err != nil {
		return "", err
	}
	return s.deviceConnectionString(deviceID, moduleID, m.Authentication.SymmetricKey.PrimaryKey), nil
}

// PutDevice creates (ifMatch "") or updates a device identity.
func (s *Server) PutDevice(d *Device, ifMatch string) (*Device, error) {
	return s.hub.PutDevice(context.Background(), d, ifMatch)
}

// DeviceConnectionString returns the connection string of an existing SAS device.
func (s *Server) DeviceConnectionString(deviceID string) (string, error) {
	d, err := s.hub.GetDevice(context.Background(), deviceID)
	if err != nil {
		return "", err
	}
	if d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("device %s does not use SAS authentication", deviceID)
	}
	return s.deviceConnectionString(deviceID, "", d.Authentication.SymmetricKey.PrimaryKey), nil
}

func (s *Server) deviceConnectionString(deviceID, moduleID, key string) string {
	return sas.ConnectionString{HostName: s.mqttHost(), DeviceID: deviceID, ModuleID: moduleID, SharedAccessKey: key}.String()
}

// WebSocketHost is host:port for device clients using MQTT over WebSockets,
// which connect to the HTTPS port.
func (s *Server) WebSocketHost() string {
	return net.JoinHostPort(s.opts.HostName, strconv.Itoa(s.httpsPort()))
}

// Device returns a device identity.
func (s *Server) Device(deviceID string) (*Device, error) {
	return s.hub.GetDevice(context.Background(), deviceID)
}

// Twin returns a device twin (moduleID "") or module twin as the service
// REST API shows it.
func (s *Server) Twin(deviceID, moduleID string) (json.RawMessage, error) {
	return s.hub.GetTwin(context.Background(), hub.Identity{DeviceID: deviceID, ModuleID: moduleID})
}

// IsConnected reports whether the device (or module) has a live connection.
func (s *Server) IsConnected(deviceID, moduleID string) bool {
	return s.hub.IsConnected(hub.Identity{DeviceID: deviceID, ModuleID: moduleID})
}

// Messages returns the recorded device-to-cloud messages of a device (all
// devices when deviceID is ""), oldest first.
func (s *Server) Messages(deviceID string) ([]*Message, error) {
	return s.hub.Telemetry(deviceID, "", 0, 0)
}

// SetClock sets the emulator's clock (SAS expiry, timestamps); nil restores
// the real clock.
func (s *Server) SetClock(f func() time.Time) { s.hub.SetClock(f) }

// SetTime freezes the emulator's clock at t.
func (s *Server) SetTime(t time.Time) { s.hub.SetClock(func() time.Time { return t }) }
