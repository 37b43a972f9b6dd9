// SPDX-License-Identifier: MIT

package device

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/wire"
)

// sdkName is the product in the user agent sent as DeviceClientType.
const sdkName = "iothub-go-device"

// identity is who the client is and where it connects.
type identity struct {
	host     string // HostName without port: used in the username and the SAS resource
	netHost  string // GatewayHostName, else HostName; may carry ":port"
	deviceID string
	moduleID string
}

func newIdentity(hostName, gateway, deviceID, moduleID string) (identity, error) {
	if hostName == "" {
		return identity{}, errors.New("device: empty host name")
	}
	if deviceID == "" {
		return identity{}, errors.New("device: empty device id")
	}
	netHost := hostName
	if gateway != "" {
		netHost = gateway
	}
	host, _ := splitPort(hostName)
	return identity{host: host, netHost: netHost, deviceID: deviceID, moduleID: moduleID}, nil
}

// clientID is the MQTT client identifier: {deviceId} or {deviceId}/{moduleId}.
func (id identity) clientID() string {
	if id.moduleID != "" {
		return id.deviceID + "/" + id.moduleID
	}
	return id.deviceID
}

// address returns host:port to dial. A port in HostName or GatewayHostName
// wins (local runs on unprivileged ports); otherwise 8883 for MQTT and 443
// for MQTT over WebSockets.
func (id identity) address(webSockets bool) (addr, serverName string) {
	host, port := splitPort(id.netHost)
	if port == "" {
		port = "8883"
		if webSockets {
			port = "443"
		}
	}
	return net.JoinHostPort(trimBrackets(host), port), trimBrackets(host)
}

// splitPort splits "host:port" and returns host unchanged when it has no
// port.
func splitPort(hostport string) (host, port string) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, ""
	}
	if isIPv6(h) {
		return "[" + h + "]", p
	}
	return h, p
}

func isIPv6(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.To4() == nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// userAgent is sent URL-encoded as DeviceClientType, shaped like the Node
// SDK's "azure-iot-device/<ver> (<runtime>; <os>; <arch>)" with the
// product info appended unseparated, as both Node and Python append it.
func userAgent(productInfo string) string {
	return wire.UserAgent(sdkName) + productInfo
}

// username builds the MQTT username:
// {host}/{clientId}/?api-version=2021-04-12&DeviceClientType={ua}[&model-id={dtmi}].
// The host and client id go in raw and the query values escaped (Python
// pipeline_stages_iothub_mqtt.py builds it this way; Node puts model-id
// before DeviceClientType, and the hub reads the query by name).
func username(id identity, productInfo, modelID string) string {
	u := id.host + "/" + id.clientID() + "/?api-version=" + wire.APIVersion +
		"&DeviceClientType=" + wire.Escape(userAgent(productInfo))
	if modelID != "" {
		u += "&model-id=" + wire.Escape(modelID)
	}
	return u
}

// credentials produces the CONNECT password.
type credentials struct {
	keyName string // policy name, sent as skn (hub-policy device strings)
	key     string // base64 shared access key; empty for tokens and X.509

	mu    sync.Mutex
	token string // a caller-supplied SAS token, replaceable by UpdateSASToken
	asked string // the token the application was last asked to replace
}

// firstAsk reports whether to ask the application to replace token, the
// one a session connected with, and records the asking. It says no when
// the application was asked for that token already, and when it has
// replaced the token meanwhile (UpdateSASToken): the supervisor may see the
// old session's renewal time only after the new token arrived, and the new
// one needs no replacing yet.
func (cr *credentials) firstAsk(token string) bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.token != token || cr.asked == token {
		return false
	}
	cr.asked = token
	return true
}

// password returns the password for a new connection and its expiry (zero
// when unknown or for X.509, which sends none).
func (cr *credentials) password(id identity, lifetime time.Duration, now time.Time) (string, time.Time, error) {
	if cr.key != "" {
		// se is whole seconds; rounding up keeps the full lifetime, so the
		// renewal time (expiry minus a margin below the lifetime) is always
		// in the future.
		expiry := now.Add(lifetime)
		if t := expiry.Truncate(time.Second); !t.Equal(expiry) {
			expiry = t.Add(time.Second)
		}
		tok, err := sas.NewToken(sas.ResourceURI(id.host, id.deviceID, id.moduleID), cr.keyName, cr.key, expiry)
		return tok, expiry, err
	}
	cr.mu.Lock()
	tok := cr.token
	cr.mu.Unlock()
	if tok == "" {
		return "", time.Time{}, nil
	}
	var expiry time.Time
	if t, err := sas.ParseToken(tok); err == nil {
		expiry = t.Expiry
	}
	return tok, expiry, nil
}

// renewable reports whether the client can mint tokens itself.
func (cr *credentials) renewable() bool { return cr.key != "" }
