// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// The $cbs node (AMQP claims-based security, draft 1.0): a put-token
// request carries application properties operation "put-token", type (the
// token type) and name (the audience), and the token as an amqp-value
// string. A token for {host}/devices/{id}[/modules/{mid}] claims that
// device or module and is checked as its MQTT password would be; any
// other audience on this hub is a shared access policy's claim on that
// resource ("{host}", "sb://{host}/{eventhub}/...", "amqps://..."). The
// answer is 200 (Node's IoT SDKs accept nothing else), or 401 with the
// reason, or 400 for a malformed request.

// Token types the SDKs put: the IoT SDKs and Event Hubs SDKs with a
// key say servicebus.windows.net:sastoken; the C SDK may say
// azure-devices.net:sastoken; "jwt" is an Azure AD token.
const (
	tokenTypeSAS     = "servicebus.windows.net:sastoken"
	tokenTypeSASIoT  = "azure-devices.net:sastoken"
	tokenTypeJWT     = "jwt"
	opPutToken       = "put-token"
	maxTokenBodySize = 8 << 10
)

// attachCBS accepts a link to $cbs: the client's sender carries put-token
// requests, its receiver gets the answers.
func (c *conn) attachCBS(l *amqp.Link) error {
	if l.Role() == amqp.RoleReceiver {
		c.mu.Lock()
		c.cbsIn[l] = struct{}{}
		c.mu.Unlock()
		go func() {
			c.serveRequests(l, NodeCBS, c.putToken)
			c.mu.Lock()
			delete(c.cbsIn, l)
			c.mu.Unlock()
		}()
		return nil
	}
	c.addReplyLink(NodeCBS, l)
	return nil
}

// putToken answers one $cbs request.
func (c *conn) putToken(_ context.Context, req *amqp.Message) *amqp.Message {
	op := stringProp(req, "operation")
	if op != opPutToken {
		return statusReply(400, "operation '"+op+"' is not supported on $cbs; use put-token", nil)
	}
	audience := stringProp(req, "name")
	if audience == "" {
		return statusReply(400, "the put-token request names no audience (application property name)", nil)
	}
	switch typ := stringProp(req, "type"); typ {
	case tokenTypeSAS, tokenTypeSASIoT:
	case tokenTypeJWT:
		return statusReply(401, "Azure Active Directory tokens are not supported by the emulator; use a shared access signature", nil)
	default:
		return statusReply(400, "token type '"+typ+"' is not supported; use "+tokenTypeSAS, nil)
	}
	token, ok := tokenOf(req)
	if !ok {
		return statusReply(400, "the put-token request carries no token (an amqp-value string)", nil)
	}
	if strings.HasPrefix(token, "Bearer ") {
		return statusReply(401, "Azure Active Directory tokens are not supported by the emulator; use a shared access signature", nil)
	}
	cl, err := c.tokenClaim(audience, token)
	if err != nil {
		c.log.Info("amqp: put-token refused", "audience", audience, "err", oneLine(err))
		if errors.Is(err, hub.ErrAuth) {
			return statusReply(401, err.Error(), nil)
		}
		return statusReply(400, err.Error(), nil)
	}
	if err := c.addClaim(cl); err != nil {
		return statusReply(403, err.Error(), nil)
	}
	if !cl.Service() {
		// The device is connected from here on, as an MQTT device is once
		// its CONNECT is accepted (device.go).
		if _, err := c.ensureDevice(cl.Identity, claimMethod(cl)); err != nil && huberr.As(err).Status == 401 {
			c.dropDeviceClaims(cl.Identity)
			return statusReply(401, huberr.As(err).Message, nil)
		}
		// Any other refusal (a fault's duration, throttling) still answers
		// 200: the Node SDK takes every other status for bad credentials
		// and stops retrying. The device's links are refused instead, with
		// a condition the SDKs retry (faults.go).
	}
	return statusReply(200, "OK", nil)
}

// tokenOf reads the token from a put-token body: an amqp-value string, or
// (leniently) one data section.
func tokenOf(m *amqp.Message) (string, bool) {
	var s string
	switch v := m.Value.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		if len(m.Data) != 1 {
			return "", false
		}
		s = string(m.Data[0])
	}
	if s == "" || len(s) > maxTokenBodySize {
		return "", false
	}
	return s, true
}

// tokenClaim checks a token for an audience and returns the claim it makes.
func (c *conn) tokenClaim(audience, token string) (*Claim, error) {
	h := c.srv.hub
	_, path := hub.SplitResource(audience)
	if !strings.Contains(audience, "/") && strings.Contains(strings.ToLower(audience), "%2f") {
		// The Node device SDK puts the token's sr as the audience, which is
		// the whole resource URI encoded once (host%2Fdevices%2F{id}):
		// decoded once, its segments are raw ids, which deviceAudience
		// reads encoded.
		if d, err := url.PathUnescape(audience); err == nil {
			_, raw := hub.SplitResource(d)
			seg := strings.Split(raw, "/")
			for i := range seg {
				seg[i] = url.PathEscape(seg[i])
			}
			path = strings.Join(seg, "/")
		}
	}
	if id, ok, err := deviceAudience(path); err != nil {
		return nil, err
	} else if ok {
		auth, err := h.AuthenticateDevice(id, token, nil)
		if err != nil {
			return nil, err
		}
		return &Claim{Identity: id, Method: auth.Method, Audience: audience, token: token, deadline: deadline(auth.Expiry)}, nil
	}
	pt, err := h.AuthenticatePolicyToken(token, audience)
	if err != nil {
		return nil, err
	}
	return &Claim{Policy: pt.Policy, Rights: pt.Rights, Scope: strings.ToLower(path), Method: "sas",
		Audience: audience, token: token, deadline: deadline(pt.Expiry)}, nil
}

// deviceAudience reads devices/{id} and devices/{id}/modules/{mid} (URL
// encoded, as the SDKs write them).
func deviceAudience(path string) (hub.Identity, bool, error) {
	seg := strings.Split(path, "/")
	if len(seg) < 2 || !strings.EqualFold(seg[0], "devices") {
		return hub.Identity{}, false, nil
	}
	for i, s := range seg {
		d, err := url.PathUnescape(s)
		if err != nil {
			return hub.Identity{}, false, errors.New("the audience is not URL-encoded correctly")
		}
		seg[i] = d
	}
	switch {
	case len(seg) == 2 && seg[1] != "":
		return hub.Identity{DeviceID: seg[1]}, true, nil
	case len(seg) == 4 && strings.EqualFold(seg[2], "modules") && seg[1] != "" && seg[3] != "":
		return hub.Identity{DeviceID: seg[1], ModuleID: seg[3]}, true, nil
	}
	return hub.Identity{}, false, errors.New("a device audience is {host}/devices/{id} or {host}/devices/{id}/modules/{moduleId}")
}
