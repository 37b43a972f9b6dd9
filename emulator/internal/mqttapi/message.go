// SPDX-License-Identifier: MIT

package mqttapi

import "github.com/iothubemulator/iothub/emulator/internal/hub"

// Application properties the adapter adds (§3.2, §3.4).
const (
	propRetain      = "mqtt-retain"        // a PUBLISH had RETAIN=1: not stored, only flagged
	propMessageType = "iothub-MessageType" // "Will" on a forwarded last-will message
)

// messageFromBag builds a device-to-cloud message from a decoded property
// bag: the $.-keys of §3.6 fill the system fields, everything else is an
// application property (a later duplicate wins).
func messageFromBag(props []property, body []byte) *hub.Message {
	m := &hub.Message{Body: body, Properties: make(map[string]string, len(props))}
	for _, p := range props {
		if f := systemField(m, p.Key); f != nil {
			*f = p.Value
			continue
		}
		m.Properties[p.Key] = p.Value
	}
	return m
}

// systemField returns the message field a system key sets, or nil.
func systemField(m *hub.Message, key string) *string {
	if len(key) < 3 || key[0] != '$' || key[1] != '.' {
		return nil
	}
	switch key[2:] {
	case "mid":
		return &m.MessageID
	case "cid":
		return &m.CorrelationID
	case "uid":
		return &m.UserID
	case "to":
		return &m.To
	case "exp":
		return &m.ExpiryTime
	case "ct":
		return &m.ContentType
	case "ce":
		return &m.ContentEncoding
	case "ctime":
		return &m.CreationTime
	case "schema":
		return &m.MessageSchema
	case "on":
		return &m.OutputName
	case "ifid":
		return &m.InterfaceID
	case "sub":
		return &m.ComponentName
	}
	return nil
}
