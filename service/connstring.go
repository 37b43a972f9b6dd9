// SPDX-License-Identifier: MIT

package service

import (
	"fmt"

	"github.com/iothubemulator/iothub/internal/sas"
)

// DeviceConnectionString returns the connection string a device client
// uses for d on the hub hostName: with the primary key for SAS devices, or
// x509=true for X.509 devices. hostName is written as given. For a real hub
// it is the bare host name; note that a port in Client.HostName is the REST
// port, while devices connect to their protocol's port (with the emulator
// on a non-default port, give its MQTT host:port).
func DeviceConnectionString(hostName string, d *Device) (string, error) {
	if d == nil || d.DeviceID == "" {
		return "", fmt.Errorf("service: device id is required")
	}
	return identityConnectionString(hostName, d.DeviceID, "", d.Authentication)
}

// ModuleConnectionString returns the connection string a module client
// uses for m on the hub hostName; see DeviceConnectionString.
func ModuleConnectionString(hostName string, m *Module) (string, error) {
	if m == nil || m.DeviceID == "" || m.ModuleID == "" {
		return "", fmt.Errorf("service: device id and module id are required")
	}
	return identityConnectionString(hostName, m.DeviceID, m.ModuleID, m.Authentication)
}

func identityConnectionString(host, deviceID, moduleID string, a *AuthenticationMechanism) (string, error) {
	cs := sas.ConnectionString{HostName: host, DeviceID: deviceID, ModuleID: moduleID}
	switch {
	case a == nil:
		return "", fmt.Errorf("service: identity %q has no authentication", deviceID)
	case a.Type == AuthSelfSigned || a.Type == AuthCertificateAuthority:
		cs.X509 = true
	case a.SymmetricKey != nil && a.SymmetricKey.PrimaryKey != "":
		cs.SharedAccessKey = a.SymmetricKey.PrimaryKey
	default:
		return "", fmt.Errorf("service: identity %q has no primary key (authentication type %q)", deviceID, a.Type)
	}
	if err := cs.Validate(); err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	return cs.String(), nil
}
