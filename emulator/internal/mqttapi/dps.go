// SPDX-License-Identifier: MIT

package mqttapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
)

// The Device Provisioning Service's device API over MQTT (DPS
// documentation "MQTT support"; Node azure-iot-provisioning-device-mqtt,
// Python pipeline_stages_provisioning_mqtt.py, azure-sdk-for-c
// az_iot_provisioning_client.c). It shares the listeners with the hub: a
// CONNECT whose username is {idScope}/registrations/{registrationId}/...
// and whose client id is the registration id is a provisioning
// connection, served by this file and never registered with the hub.
const (
	dpsFilterResponses = "$dps/registrations/res/#"
	dpsPrefixResponse  = "$dps/registrations/res/"
	dpsPrefixRegister  = "$dps/registrations/PUT/iotdps-register/"
	dpsPrefixStatus    = "$dps/registrations/GET/iotdps-get-operationstatus/"
)

// dpsClientPrefix starts the client id mochi knows a provisioning
// connection by. A registration id is often the device id of the same
// device's hub connection, and mochi lets a newer client of an id take
// over the older one; the prefix keeps the two apart. '|' occurs in no
// hub client id (device and module ids do not allow it).
const dpsClientPrefix = "dps|"

// parseDPSUsername reads a provisioning CONNECT username,
// {idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion={ua}],
// for the client id (the registration id). ok is false for anything else,
// which is then a hub username or nothing valid. A hub username can never
// take this shape: its second segment is the client id, here
// "registrations", and the client id would have to follow it again.
func parseDPSUsername(username, clientID string) (scope, apiVersion string, ok bool) {
	scope, rest, found := strings.Cut(username, "/registrations/")
	if !found || scope == "" || strings.Contains(scope, "/") || clientID == "" {
		return "", "", false
	}
	query, found := strings.CutPrefix(rest, clientID+"/")
	if !found {
		return "", "", false
	}
	query = strings.TrimPrefix(query, "?")
	for item := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(item, "=")
		if k == "api-version" {
			apiVersion = v
		}
	}
	return scope, apiVersion, true
}

// dpsSession is a provisioning connection: the credentials of its
// CONNECT, presented again with every request, as the HTTPS device API
// presents them with every call.
//
// The CONNECT itself proves nothing, so that a peer without credentials
// holds no more than before authentication, the connection is closed
// unless a request passes attestation within the server's connect timeout
// of the CONNACK. A refused request does not close it at once: the SDKs
// unsubscribe and disconnect after a 401 answer, and Node's provisioning
// transport waits for ever for an UNSUBACK on a connection the server has
// closed.
type dpsSession struct {
	srv      *Server
	cl       *mqtt.Client
	creds    dps.Credentials
	attested atomic.Bool // a request passed attestation
	timer    *time.Timer // the attestation deadline
}

// errNotAttested ends a provisioning connection whose device the service
// could not attest.
var errNotAttested = errors.New("provisioning connection: the device was not attested")

// startDeadline closes the connection unless a request is attested in
// time.
func (d *dpsSession) startDeadline(timeout time.Duration) {
	d.timer = time.AfterFunc(timeout, func() {
		if !d.attested.Load() {
			d.srv.log.Info("closing provisioning connection", "registrationId", d.creds.RegistrationID, "reason", "no attested request within the connect timeout")
			d.cl.Stop(errNotAttested)
		}
	})
}

// end stops the deadline; the connection is gone.
func (d *dpsSession) end() {
	if d.timer != nil {
		d.timer.Stop()
	}
}

// dpsOf returns the provisioning session of a mochi client, or nil.
func dpsOf(cl *mqtt.Client) *dpsSession {
	cc, ok := cl.Net.Conn.(*clientConn)
	if !ok {
		return nil
	}
	return cc.dps.Load()
}

// screenDPSConnect runs in OnPacketRead, before mochi parses the CONNECT:
// a provisioning CONNECT gets its client id prefixed (see dpsClientPrefix)
// and the connection remembers the registration id.
func (s *Server) screenDPSConnect(cc *clientConn, pk *packets.Packet) {
	if s.dps == nil {
		return
	}
	// A copy: mochi's string shares the CONNECT packet's bytes, which the
	// registration id would keep alive wherever the service keeps it.
	cid := strings.Clone(pk.Connect.ClientIdentifier)
	if _, _, ok := parseDPSUsername(string(pk.Connect.Username), cid); !ok {
		return
	}
	cc.dpsRegistrationID = cid
	pk.Connect.ClientIdentifier = dpsClientPrefix + cid
	// A registration keeps nothing between connections: mochi must not
	// keep the client after it ends, whatever the device asked.
	pk.Connect.Clean = true
}

// authenticateDPS checks a provisioning CONNECT: api-version present and
// no will (the service has none); those refusals wrap errCredentials and
// become CONNACK 5. The credentials themselves are not checked here: the
// service accepts the CONNECT and answers the register request with 401
// on the response topic when it cannot attest the device (a report of the
// real service's answer: MicrosoftDocs/azure-docs issue 43157), which the
// SDKs turn into their unauthorized error. Every request attests the
// device again, as every HTTPS request does.
func (s *Server) authenticateDPS(cl *mqtt.Client, cc *clientConn, pk packets.Packet) (*dpsSession, error) {
	rid := cc.dpsRegistrationID
	scope, version, _ := parseDPSUsername(string(pk.Connect.Username), rid)
	if version == "" {
		return nil, fmt.Errorf("%w: the provisioning username %q has no api-version", errCredentials, pk.Connect.Username)
	}
	if pk.Connect.WillFlag {
		return nil, fmt.Errorf("%w: a provisioning connection has no will", errCredentials)
	}
	creds := dps.Credentials{IDScope: scope, RegistrationID: rid, Token: string(pk.Connect.Password), Chain: cc.peerCerts}
	return &dpsSession{srv: s, cl: cl, creds: creds}, nil
}

// dpsRequest is a parsed request topic.
type dpsRequest struct {
	register    bool   // register, else operation status
	rid         string // $rid as sent, echoed byte for byte
	operationID string // status queries
}

// parseDPSTopic reads $dps/registrations/PUT/iotdps-register/?$rid={rid}
// and $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}.
// Unknown query keys are ignored; $rid is required, and operationId for a
// status query.
func parseDPSTopic(topic string) (dpsRequest, error) {
	var r dpsRequest
	var tail string
	switch {
	case strings.HasPrefix(topic, dpsPrefixRegister):
		r.register, tail = true, topic[len(dpsPrefixRegister):]
	case strings.HasPrefix(topic, dpsPrefixStatus):
		tail = topic[len(dpsPrefixStatus):]
	default:
		return r, topicErr("%q is not a provisioning request topic", topic)
	}
	q, ok := strings.CutPrefix(tail, "?")
	if !ok {
		return r, topicErr("provisioning request topic %q has %q where ?$rid= belongs", topic, tail)
	}
	for item := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(item, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return r, topicErr("provisioning request key %q is not percent-encoded correctly", k)
		}
		switch key {
		case "$rid":
			r.rid = v
		case "operationId":
			if r.operationID, err = url.PathUnescape(v); err != nil {
				return r, topicErr("operationId %q is not percent-encoded correctly", v)
			}
		}
	}
	switch {
	case r.rid == "":
		return r, topicErr("provisioning request topic %q has no $rid", topic)
	case !r.register && r.operationID == "":
		return r, topicErr("operation status topic %q has no operationId", topic)
	}
	return r, nil
}

// checkDPSPacket screens what a provisioning connection sends: QoS 0 or 1
// PUBLISHes to the two request topics and a SUBSCRIBE to the response
// filter; anything else closes the connection, as the hub's adapter does
// for its own topics.
func checkDPSPacket(pk packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 1 {
			return errors.New("PUBLISH with QoS 2 is not supported")
		}
		_, err := parseDPSTopic(pk.TopicName)
		return err
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if f.Filter != dpsFilterResponses {
				return topicErr("a provisioning connection subscribes to %s only, not %q", dpsFilterResponses, f.Filter)
			}
		}
	}
	return nil
}

// handlePublish serves one request and answers on the response topic
// once it is done: 202 with retry-after while the operation is assigning
// (the register answer), 200 with the operation, or the error's status
// with the service's error body.
func (d *dpsSession) handlePublish(pk packets.Packet) error {
	req, err := parseDPSTopic(pk.TopicName)
	if err != nil {
		return err
	}
	ctx := d.srv.ctx
	if !d.attested.Load() {
		// Before the request, which may wait on a custom allocation
		// webhook for longer than the deadline.
		if _, err := d.srv.dps.Authenticate(d.creds); err == nil {
			d.attested.Store(true)
		}
	}
	var op *dps.RegistrationOperationStatus
	if req.register {
		op, err = d.srv.dps.Register(ctx, d.creds, pk.Payload)
	} else {
		op, err = d.srv.dps.OperationStatus(ctx, d.creds, req.operationID)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		e := dps.AsError(err)
		if e.Status >= 500 {
			d.srv.log.Error("provisioning request failed", "registrationId", d.creds.RegistrationID, "err", err)
		}
		return d.respond(e.Status, req.rid, 0, e.Body(newTrackingID(), d.srv.dps.Now()))
	}
	body, err := json.Marshal(op)
	if err != nil {
		return err
	}
	if op.Status == dps.RegAssigning {
		return d.respond(http.StatusAccepted, req.rid, d.srv.dps.RetryAfter(), body)
	}
	return d.respond(http.StatusOK, req.rid, 0, body)
}

// respond writes $dps/registrations/res/{status}/?$rid={rid}[&retry-after={n}]
// to this client alone.
func (d *dpsSession) respond(status int, rid string, retryAfter int, body []byte) error {
	topic := dpsPrefixResponse + strconv.Itoa(status) + "/?$rid=" + rid
	if retryAfter > 0 {
		topic += "&retry-after=" + strconv.Itoa(retryAfter)
	}
	return d.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     body,
	})
}
