// SPDX-License-Identifier: MIT

package fakehub

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// onPublish handles a device publish: records it, and answers twin
// requests and method responses.
func (h *Hub) onPublish(cl *mqtt.Client, pk packets.Packet) error {
	p := Publish{ClientID: cl.ID, Topic: pk.TopicName, Payload: bytes.Clone(pk.Payload), QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain}
	var drop bool
	h.record(func() {
		h.publishes = append(h.publishes, p)
		for i, prefix := range h.dropOnPublish {
			if strings.HasPrefix(p.Topic, prefix) {
				h.dropOnPublish = append(h.dropOnPublish[:i], h.dropOnPublish[i+1:]...)
				drop = true
				break
			}
		}
	})
	if drop {
		cl.Stop(errors.New("fakehub: dropped on publish"))
		return packets.ErrRejectPacket
	}
	switch {
	case strings.HasPrefix(p.Topic, "$iothub/twin/"):
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.answerTwin(p)
		}()
	case strings.HasPrefix(p.Topic, "$iothub/methods/res/"):
		rest := strings.TrimPrefix(p.Topic, "$iothub/methods/res/")
		statusText, query, _ := strings.Cut(rest, "/?")
		status, _ := strconv.Atoi(statusText)
		rid := strings.TrimPrefix(query, "$rid=")
		h.mu.Lock()
		ch := h.methodWait[rid]
		h.mu.Unlock()
		if ch != nil {
			ch <- MethodResult{Status: status, Payload: p.Payload}
		}
	}
	return nil
}

// answerTwin plays the hub's twin service for one request.
func (h *Hub) answerTwin(p Publish) {
	path, query, _ := strings.Cut(strings.TrimPrefix(p.Topic, "$iothub/twin/"), "?")
	verb, resource, _ := strings.Cut(path, "/")
	req := TwinRequest{ClientID: p.ClientID, Verb: verb, Resource: "/" + resource, RID: strings.TrimPrefix(query, "$rid="), Body: p.Payload}
	h.mu.Lock()
	hookFn := h.twinHook
	h.mu.Unlock()
	reply, ok := TwinReply{}, false
	if hookFn != nil {
		reply, ok = hookFn(req)
	}
	if !ok {
		reply = h.defaultTwin(req)
	}
	if reply.Silent {
		return
	}
	topic := "$iothub/twin/res/" + strconv.Itoa(reply.Status) + "/?$rid=" + req.RID
	if reply.Version != 0 {
		topic += "&$version=" + strconv.FormatInt(reply.Version, 10)
	}
	_ = h.srv.Publish(topic, reply.Body, false, 0)
}

func (h *Hub) defaultTwin(req TwinRequest) TwinReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case req.Verb == "GET" && req.Resource == "/":
		doc := map[string]any{
			"desired":  withVersion(h.desired, h.desiredVersion),
			"reported": withVersion(h.reported, h.reportVersion),
		}
		b, _ := json.Marshal(doc)
		return TwinReply{Status: 200, Body: b}
	case req.Verb == "PATCH" && req.Resource == "/properties/reported/":
		var patch map[string]any
		if err := json.Unmarshal(req.Body, &patch); err != nil || patch == nil {
			return TwinReply{Status: 400, Body: []byte(`{"errorCode":400004,"trackingId":"fakehub","message":"malformed patch","timestampUtc":"2024-01-01T00:00:00Z"}`)}
		}
		merge(h.reported, patch)
		h.reportVersion++
		return TwinReply{Status: 204, Version: h.reportVersion}
	}
	return TwinReply{Status: 400, Body: []byte(`{"errorCode":400004,"message":"unsupported twin request"}`)}
}

func withVersion(m map[string]any, v int64) map[string]any {
	out := map[string]any{"$version": v}
	for k, x := range m {
		out[k] = x
	}
	return out
}

// merge applies a JSON merge patch: null deletes, objects merge recursively.
func merge(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[k] = sub
			}
			merge(sub, pv)
		default:
			dst[k] = v
		}
	}
}

// hook is the hub's single mochi hook.
type hook struct {
	mqtt.HookBase
	hub *Hub
}

func (k *hook) ID() string { return "fakehub" }

func (k *hook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSubscribed, mqtt.OnPacketRead, mqtt.OnDisconnect,
	}, b) >= 0
}

// OnConnect answers CONNACK 3 while the hub is set unavailable. mochi
// sends no CONNACK for an error from this hook, so the hook sends it.
func (k *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h := k.hub
	h.mu.Lock()
	unavailable := h.unavailable
	h.mu.Unlock()
	if !unavailable {
		return nil
	}
	c := recordConnect(cl, pk)
	h.record(func() { h.connects = append(h.connects, c) })
	_ = h.srv.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
	return packets.ErrServerUnavailable
}

func (k *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h := k.hub
	c := recordConnect(cl, pk)
	h.mu.Lock()
	auth := h.auth
	h.mu.Unlock()
	c.Accepted = auth == nil || auth(c)
	h.record(func() {
		h.connects = append(h.connects, c)
		if c.Accepted {
			h.lastConn[c.ClientID] = len(h.connects) - 1
		}
	})
	return c.Accepted
}

// recordConnect describes a CONNECT packet, not yet accepted.
func recordConnect(cl *mqtt.Client, pk packets.Packet) Connect {
	c := Connect{
		ClientID:        pk.Connect.ClientIdentifier,
		Username:        string(pk.Connect.Username),
		Password:        string(pk.Connect.Password),
		UsernameFlag:    pk.Connect.UsernameFlag,
		PasswordFlag:    pk.Connect.PasswordFlag,
		Clean:           pk.Connect.Clean,
		Keepalive:       pk.Connect.Keepalive,
		ProtocolName:    string(pk.Connect.ProtocolName),
		ProtocolVersion: pk.ProtocolVersion,
		Listener:        cl.Net.Listener,
	}
	if st, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if certs := st.ConnectionState().PeerCertificates; len(certs) > 0 {
			c.PeerCommonName = certs[0].Subject.CommonName
		}
	}
	return c
}

func (k *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (k *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	return pk, k.hub.onPublish(cl, pk)
}

func (k *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	h := k.hub
	h.record(func() {
		conn := h.lastConn[cl.ID]
		for _, f := range pk.Filters {
			h.subs = append(h.subs, Subscription{ClientID: cl.ID, Conn: conn, Filter: f.Filter, QoS: f.Qos})
		}
	})
}

// OnPacketRead counts the device's PUBACKs (OnQosComplete would also see
// the hub's own PUBACKs for telemetry).
func (k *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback {
		k.hub.record(func() { k.hub.acks[cl.ID]++ })
	}
	return pk, nil
}

func (k *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.Net.Inline {
		return
	}
	k.hub.record(func() { k.hub.disconnects++ })
}
