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

// PutDevice creates (ifMatch "") or updates (ifMatch "*" or the device's
// ETag) a device identity, and returns it as stored. SAS keys left empty
// are generated on create and kept on update.
func (s *Server) PutDevice(d *Device, ifMatch string) (*Device, error) {
	out, err := s.hub.PutDevice(context.Background(), d.hub(), ifMatch)
	if err != nil {
		return nil, err
	}
	return deviceOf(out), nil
}

// PutModule creates (ifMatch "") or updates a module identity on an
// existing device.
func (s *Server) PutModule(m *Module, ifMatch string) (*Module, error) {
	out, err := s.hub.PutModule(context.Background(), m.hub(), ifMatch)
	if err != nil {
		return nil, err
	}
	return moduleOf(out), nil
}

// DeleteDevice deletes a device with its modules, twins and queued
// messages; its connections are closed.
func (s *Server) DeleteDevice(deviceID string) error {
	return s.hub.DeleteDevice(context.Background(), deviceID, "*")
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

// HTTPSHost is host:port of the hub's HTTPS API for device clients: their
// file uploads go there (device.WithHTTPSHost). It is the same address as
// WebSocketHost.
func (s *Server) HTTPSHost() string { return s.WebSocketHost() }

// Device returns a device identity.
func (s *Server) Device(deviceID string) (*Device, error) {
	d, err := s.hub.GetDevice(context.Background(), deviceID)
	if err != nil {
		return nil, err
	}
	return deviceOf(d), nil
}

// Module returns a module identity.
func (s *Server) Module(deviceID, moduleID string) (*Module, error) {
	m, err := s.hub.GetModule(context.Background(), deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return moduleOf(m), nil
}

// Twin returns a device twin (moduleID "") or module twin as the service
// REST API shows it.
func (s *Server) Twin(deviceID, moduleID string) (json.RawMessage, error) {
	tw, err := s.hub.GetTwin(context.Background(), hub.Identity{DeviceID: deviceID, ModuleID: moduleID})
	if err != nil {
		return nil, err
	}
	return json.Marshal(tw)
}

// IsConnected reports whether the device (or module) has a live connection.
func (s *Server) IsConnected(deviceID, moduleID string) bool {
	return s.hub.IsConnected(hub.Identity{DeviceID: deviceID, ModuleID: moduleID})
}

// Messages returns the recorded device-to-cloud messages of a device (all
// devices when deviceID is ""), oldest first.
func (s *Server) Messages(deviceID string) ([]*Message, error) {
	ms, err := s.hub.Telemetry(deviceID, "", 0, 0)
	if err != nil {
		return nil, err
	}
	return messagesOf(ms), nil
}

// The emulator has one clock. Timestamps, SAS expiry, method and connect
// timeouts, long-polls, injected fault delays, C2D time-to-live and locks
// and cache lifetimes all follow it, so moving it moves every deadline:
// after SetTime, nothing moves until FastForward or another SetTime, and a
// method call waiting 30 s for its device times out as soon as the clock is
// fast-forwarded 30 s.

// Now is the emulator's current time.
func (s *Server) Now() time.Time { return s.hub.Now() }

// SetClock makes f the emulator's time (nil: wall time). Deadlines are
// checked against f at every clock change and at least once per remaining
// wall-clock duration; prefer SetTime and FastForward, which fire them
// exactly.
func (s *Server) SetClock(f func() time.Time) { s.hub.Clock().SetFunc(f) }

// SetTime freezes the emulator's clock at t: it stays there until the next
// SetTime, FastForward or SetClock. Deadlines t reaches fire.
func (s *Server) SetTime(t time.Time) { s.hub.Clock().Set(t) }

// FastForward moves the emulator's clock d forward and fires every deadline
// it reaches (a token expiry closes its connection, a pending method call
// times out, a C2D message expires).
func (s *Server) FastForward(d time.Duration) { s.hub.Clock().FastForward(d) }

// PartitionOf is the partition of the Event Hub-compatible endpoint that a
// device's messages go to.
func (s *Server) PartitionOf(deviceID string) int { return s.hub.PartitionOf(deviceID) }
