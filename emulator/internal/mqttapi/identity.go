// SPDX-License-Identifier: MIT

package mqttapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// errCredentials is wrapped by every CONNECT the adapter refuses before the
// hub is asked; like the hub's own auth failures it becomes CONNACK 5.
var errCredentials = errors.New("not authorized")

// parseClientID reads the CONNECT client id: {deviceId} or
// {deviceId}/{moduleId} (§3.2). Id characters are the hub's to check.
func parseClientID(cid string) (hub.Identity, error) {
	dev, mod, isModule := strings.Cut(cid, "/")
	if dev == "" || (isModule && (mod == "" || strings.Contains(mod, "/"))) {
		return hub.Identity{}, fmt.Errorf("%w: client id %q is not {deviceId} or {deviceId}/{moduleId}", errCredentials, cid)
	}
	return hub.Identity{DeviceID: dev, ModuleID: mod}, nil
}

// parseUsername checks the CONNECT username {host}/{clientId}/?{query}
// against the client id and returns the IoT Plug and Play model id it
// announces, if any (§3.2). The host is not checked here: the SAS token
// names the hub, and gateways use other host names. The query is optional
// and unknown keys are ignored. Old clients sent
// {host}/{clientId}/api-version=2016-11-14 without '?'; that is accepted.
func parseUsername(username, clientID string) (modelID string, err error) {
	_, rest, _ := strings.Cut(username, "/")
	// Match the client id as a prefix rather than split on '?': ids may
	// contain '?' themselves.
	after, ok := strings.CutPrefix(rest, clientID)
	var query string
	switch {
	case !ok:
	case after == "" || after == "/":
	case strings.HasPrefix(after, "/?"):
		query = after[2:]
	case strings.HasPrefix(after, "?"):
		query = after[1:]
	case strings.HasPrefix(after, "/") && !strings.Contains(after[1:], "/") && strings.Contains(after, "="):
		query = after[1:] // {clientId}/api-version=...: the old form without '?'
	default:
		ok = false
	}
	if !ok {
		return "", fmt.Errorf("%w: username %q is not {host}/%s/?api-version={version}", errCredentials, username, clientID)
	}
	for item := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(item, "=")
		if k != "model-id" {
			continue
		}
		// SDKs percent-encode the DTMI's ':' and ';'; keep the raw text if
		// it is not valid percent-encoding rather than refuse the device.
		if dec, err := url.PathUnescape(v); err == nil {
			v = dec
		}
		modelID = v
	}
	return modelID, nil
}
