// SPDX-License-Identifier: MIT

package mqttapi

import (
	"errors"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func TestParseClientID(t *testing.T) {
	tests := []struct {
		name    string
		cid     string
		want    hub.Identity
		wantErr bool
	}{
		{"device", "dev1", hub.Identity{DeviceID: "dev1"}, false},
		{"module", "dev1/m1", hub.Identity{DeviceID: "dev1", ModuleID: "m1"}, false},
		{"special characters", "a?b$c/m#1", hub.Identity{DeviceID: "a?b$c", ModuleID: "m#1"}, false},
		{"empty", "", hub.Identity{}, true},
		{"empty device", "/m1", hub.Identity{}, true},
		{"empty module", "dev1/", hub.Identity{}, true},
		{"too many segments", "dev1/m1/x", hub.Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseClientID(tt.cid)
			if tt.wantErr {
				if !errors.Is(err, errCredentials) {
					t.Errorf("parseClientID(%q) = %v, %v; want an error wrapping errCredentials", tt.cid, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseClientID(%q) = %v, %v; want %v", tt.cid, got, err, tt.want)
			}
		})
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		name     string
		username string
		clientID string
		model    string
	}{
		{"doc form", "myhub.azure-devices.net/dev1/?api-version=2021-04-12", "dev1", ""},
		{"node form", "myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)", "dev1", ""},
		{"node with model id", "h/dev1/?api-version=2021-04-12&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1&DeviceClientType=x", "dev1", "dtmi:com:example:Thermostat;1"},
		{"raw model id", "h/dev1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1", "dev1", "dtmi:com:example:Thermostat;1"},
		{"c module form", "h/dev1/m1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.9.0%20(native%3b%20Linux%3b%20aarch64)", "dev1/m1", ""},
		{"no query", "h/dev1/", "dev1", ""},
		{"no query no slash", "h/dev1", "dev1", ""},
		{"question mark without slash", "h/dev1?api-version=2021-04-12", "dev1", ""},
		{"old form without question mark", "h/dev1/api-version=2016-11-14", "dev1", ""},
		{"id with question mark", "h/a?b/?api-version=2021-04-12", "a?b", ""},
		{"unknown keys ignored", "h/dev1/?foo&bar=1&api-version=x", "dev1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUsername(tt.username, tt.clientID)
			if err != nil || got != tt.model {
				t.Errorf("parseUsername(%q, %q) = %q, %v; want %q", tt.username, tt.clientID, got, err, tt.model)
			}
		})
	}
}

func TestParseUsernameMismatch(t *testing.T) {
	tests := []struct {
		name     string
		username string
		clientID string
	}{
		{"other device", "h/dev2/?api-version=2021-04-12", "dev1"},
		{"longer id", "h/dev10/?api-version=2021-04-12", "dev1"},
		{"module username, device client", "h/dev1/m1/?api-version=2021-04-12", "dev1"},
		{"device username, module client", "h/dev1/?api-version=2021-04-12", "dev1/m1"},
		{"no host", "dev1", "dev1"},
		{"empty", "", "dev1"},
		{"extra segment without query", "h/dev1/x/y", "dev1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseUsername(tt.username, tt.clientID); !errors.Is(err, errCredentials) {
				t.Errorf("parseUsername(%q, %q): got %v, want an error wrapping errCredentials", tt.username, tt.clientID, err)
			}
		})
	}
}
