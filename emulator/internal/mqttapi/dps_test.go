// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/sas"
)

const dpsScope = "0ne00000E11"

// newDPSEnv is newEnv with the provisioning service on the listeners.
func newDPSEnv(tb testing.TB) (*env, *dps.Service) {
	tb.Helper()
	var svc *dps.Service
	e := newEnvConfigured(tb, func(e *env) {
		var err error
		svc, err = dps.New(e.db, dps.Config{IDScope: dpsScope, HostName: hostName, AssignedHub: func() string { return hostName },
			Policies: dps.DefaultPolicies(sas.GenerateKey()), Hub: e.hub})
		if err != nil {
			tb.Fatal(err)
		}
		e.srv.dps = svc
	})
	return e, svc
}

// dpsUsername is the username the Node and C SDKs send.
func dpsUsername(scope, rid string) string {
	return scope + "/registrations/" + rid + "/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1"
}

// dpsToken is a registration token signed with key.
func dpsToken(tb testing.TB, scope, rid, key string) string {
	tb.Helper()
	tok, err := sas.NewToken(sas.RegistrationResource(scope, rid), sas.RegistrationKeyName, key, time.Now().Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// enrollKey creates a symmetric-key enrollment and returns its key.
func enrollKey(tb testing.TB, svc *dps.Service, rid string) string {
	tb.Helper()
	e, err := svc.PutEnrollment(context.Background(), rid, []byte(`{"attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"via":"dps"}}}`), "")
	if err != nil {
		tb.Fatal(err)
	}
	return e.Attestation.SymmetricKey.PrimaryKey
}

// dpsAnswer waits for the answer to $rid on the response topic and
// returns its status, retry-after and body.
func dpsAnswer(tb testing.TB, d *device, rid string) (status string, retryAfter string, body map[string]any) {
	tb.Helper()
	// Not d.next: the answer to a refused request is followed by the
	// close, and the test must see the answer whichever it notices first.
	var m paho.Message
	select {
	case m = <-d.messages:
	case <-time.After(waitTime):
		tb.Fatalf("no answer to $rid %s within the wait time", rid)
	}
	rest, ok := strings.CutPrefix(m.Topic(), "$dps/registrations/res/")
	if !ok {
		tb.Fatalf("answer on %q", m.Topic())
	}
	status, query, _ := strings.Cut(rest, "/?")
	for item := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(item, "=")
		switch k {
		case "$rid":
			if v != rid {
				tb.Fatalf("answer %q for $rid %q, want %q", m.Topic(), v, rid)
			}
		case "retry-after":
			retryAfter = v
		}
	}
	if err := json.Unmarshal(m.Payload(), &body); err != nil {
		tb.Fatalf("answer body %q: %v", m.Payload(), err)
	}
	return status, retryAfter, body
}

// TestDPSRegister registers over MQTT as the Node, Python and C SDKs do:
// CONNECT with the provisioning username, SUBSCRIBE to the response
// topic, register (202, retry-after, assigning), then query the operation
// (200, assigned).
func TestDPSRegister(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprint("ws=", ws), func(t *testing.T) {
			e, svc := newDPSEnv(t)
			key := enrollKey(t, svc, "sensor-1")
			d := e.mustConnect(t, dialer{clientID: "sensor-1", username: dpsUsername(dpsScope, "sensor-1"), password: dpsToken(t, dpsScope, "sensor-1", key), ws: ws, clean: true})
			if got := d.subscribe(t, "$dps/registrations/res/#"); got["$dps/registrations/res/#"] > 1 {
				t.Fatalf("SUBACK %v", got)
			}
			d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=r1", 1, `{"registrationId":"sensor-1"}`)
			status, retry, body := dpsAnswer(t, d, "r1")
			if status != "202" || retry != "1" || body["status"] != "assigning" || !strings.HasPrefix(fmt.Sprint(body["operationId"]), "4.") {
				t.Fatalf("register answer: %s %s %v", status, retry, body)
			}
			op := body["operationId"].(string)
			// Node sends a single space as the body of a status query.
			d.publish(t, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r2&operationId="+op, 1, " ")
			status, retry, body = dpsAnswer(t, d, "r2")
			rs, _ := body["registrationState"].(map[string]any)
			if status != "200" || retry != "" || body["status"] != "assigned" || rs["deviceId"] != "sensor-1" || rs["assignedHub"] != hostName {
				t.Fatalf("status answer: %s %s %v", status, retry, body)
			}
			dev, err := e.hub.GetDevice(context.Background(), "sensor-1")
			if err != nil || dev.Authentication.SymmetricKey.PrimaryKey != key {
				t.Fatalf("hub device %+v, %v", dev, err)
			}
			if e.hub.IsConnected(hub.Identity{DeviceID: "sensor-1"}) {
				t.Error("a provisioning connection was registered with the hub")
			}
		})
	}
}

// TestDPSErrorAnswers: request errors are answers on the response topic
// with the service's status and error body, and the connection stays.
func TestDPSErrorAnswers(t *testing.T) {
	e, svc := newDPSEnv(t)
	key := enrollKey(t, svc, "dev-1")
	d := e.mustConnect(t, dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", key), clean: true})
	d.subscribe(t, "$dps/registrations/res/#")
	for i, tc := range []struct {
		topic, body, status string
		code                float64
	}{
		{"$dps/registrations/PUT/iotdps-register/?$rid=%d", `{"registrationId":`, "400", 400004},
		{"$dps/registrations/PUT/iotdps-register/?$rid=%d", `{"registrationId":"dev-2"}`, "400", 400004},
		{"$dps/registrations/PUT/iotdps-register/?$rid=%d", `{"registrationId":"dev-1","tpm":{"endorsementKey":"AA=="}}`, "400", 400005},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%d&operationId=4.x.y", ``, "404", 404204},
	} {
		rid := fmt.Sprint(i + 1)
		d.publish(t, fmt.Sprintf(tc.topic, i+1), 1, tc.body)
		status, _, body := dpsAnswer(t, d, rid)
		if status != tc.status || body["errorCode"] != tc.code || body["message"] == "" || body["trackingId"] == "" || body["timestampUtc"] == "" {
			t.Errorf("%s %s: got %s %v", tc.topic, tc.body, status, body)
		}
	}
	if _, err := e.hub.GetDevice(context.Background(), "dev-1"); err == nil {
		t.Error("refused requests created the device")
	}
	// The enrollment is disabled after the CONNECT: the next request is 401.
	if _, err := svc.PutEnrollment(context.Background(), "dev-1", []byte(`{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+key+`","secondaryKey":"`+key+`"}},"provisioningStatus":"disabled"}`), ""); err != nil {
		t.Fatal(err)
	}
	d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=9", 1, `{"registrationId":"dev-1"}`)
	if status, _, body := dpsAnswer(t, d, "9"); status != "401" || body["errorCode"] != float64(401002) {
		t.Errorf("disabled after connect: %s %v", status, body)
	}
}

// TestDPSAttestationDeadline: a provisioning connection that sends no
// attested request within the connect timeout is closed, idle or refused;
// one whose device was attested stays.
func TestDPSAttestationDeadline(t *testing.T) {
	var svc *dps.Service
	e := newEnvConfigured(t, func(e *env) {
		var err error
		svc, err = dps.New(e.db, dps.Config{IDScope: dpsScope, HostName: hostName, AssignedHub: func() string { return hostName },
			Policies: dps.DefaultPolicies(sas.GenerateKey()), Hub: e.hub})
		if err != nil {
			t.Fatal(err)
		}
		e.srv.dps = svc
		e.srv.connectTimeout = 300 * time.Millisecond
	})
	key := enrollKey(t, svc, "dev-1")
	idle := e.mustConnect(t, dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), clean: true})
	idle.waitLost(t)
	refused := e.mustConnect(t, dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", sas.GenerateKey()), clean: true})
	refused.subscribe(t, "$dps/registrations/res/#")
	refused.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=1", 1, `{"registrationId":"dev-1"}`)
	if status, _, _ := dpsAnswer(t, refused, "1"); status != "401" {
		t.Fatalf("wrong key: %s", status)
	}
	refused.waitLost(t)

	d := e.mustConnect(t, dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", key), clean: true})
	d.subscribe(t, "$dps/registrations/res/#")
	d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=1", 1, `{"registrationId":"dev-1"}`)
	_, _, body := dpsAnswer(t, d, "1")
	time.Sleep(600 * time.Millisecond) // twice the deadline
	d.publish(t, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId="+body["operationId"].(string), 1, "")
	if status, _, _ := dpsAnswer(t, d, "2"); status != "200" {
		t.Fatalf("status query after the deadline: %s", status)
	}
}

// TestDPSAttestationRefused: the service accepts a provisioning CONNECT
// whatever its credentials and answers the register request with 401 on
// the response topic when it cannot attest the device; a CONNECT that is
// not a valid provisioning one gets CONNACK 5. Nothing is created.
func TestDPSAttestationRefused(t *testing.T) {
	e, svc := newDPSEnv(t)
	key := enrollKey(t, svc, "dev-1")
	ca, _ := certs.NewCA("fleet", time.Now())
	leaf, _ := ca.Issue("dev-2", time.Now())
	for _, tc := range []struct {
		name string
		d    dialer
	}{
		{"wrong key", dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", sas.GenerateKey())}},
		{"unknown ID scope", dialer{clientID: "dev-1", username: dpsUsername("0neFFFFFFFF", "dev-1"), password: dpsToken(t, "0neFFFFFFFF", "dev-1", key)}},
		{"unknown registration", dialer{clientID: "dev-9", username: dpsUsername(dpsScope, "dev-9"), password: dpsToken(t, dpsScope, "dev-9", key)}},
		{"no credentials", dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1")}},
		{"certificate chaining to no enrolled CA", dialer{clientID: "dev-2", username: dpsUsername(dpsScope, "dev-2"), cert: &leaf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.clean = true
			d := e.mustConnect(t, tc.d)
			d.subscribe(t, "$dps/registrations/res/#")
			d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=x1", 1, `{"registrationId":"`+tc.d.clientID+`"}`)
			status, _, body := dpsAnswer(t, d, "x1")
			if status != "401" || body["errorCode"] != float64(401002) {
				t.Fatalf("register: %s %v, want 401 401002", status, body)
			}
			// The connection stays for the device to disconnect, as the
			// SDKs do after a 401; the next request is refused too.
			d.publish(t, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=x2&operationId=4.a.b", 1, ``)
			if status, _, body := dpsAnswer(t, d, "x2"); status != "401" {
				t.Fatalf("status query: %s %v, want 401", status, body)
			}
		})
	}
	for _, tc := range []struct {
		name string
		d    dialer
	}{
		{"no api-version", dialer{clientID: "dev-1", username: dpsScope + "/registrations/dev-1/", password: dpsToken(t, dpsScope, "dev-1", key)}},
		{"will", dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", key), will: "$dps/registrations/res/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.clean = true
			if _, code := e.connect(t, tc.d); code != 5 {
				t.Fatalf("CONNACK %d, want 5", code)
			}
		})
	}
	for _, id := range []string{"dev-1", "dev-2", "dev-9"} {
		if _, err := e.hub.GetDevice(context.Background(), id); err == nil {
			t.Errorf("%s created", id)
		}
	}
}

// TestDPSTopicRules: a provisioning connection may use the provisioning
// topics only; anything else closes it, and a hub connection cannot use
// them.
func TestDPSTopicRules(t *testing.T) {
	e, svc := newDPSEnv(t)
	key := enrollKey(t, svc, "dev-1")
	dial := func() *device {
		return e.mustConnect(t, dialer{clientID: "dev-1", username: dpsUsername(dpsScope, "dev-1"), password: dpsToken(t, dpsScope, "dev-1", key), clean: true})
	}
	for name, act := range map[string]func(*device){
		"subscribe to a hub filter": func(d *device) { d.SubscribeMultiple(map[string]byte{"$iothub/twin/res/#": 0}, nil) },
		"publish telemetry":         func(d *device) { d.Publish("devices/dev-1/messages/events/", 1, false, "x") },
		"publish QoS 2":             func(d *device) { d.Publish("$dps/registrations/PUT/iotdps-register/?$rid=1", 2, false, "{}") },
		"register without $rid":     func(d *device) { d.Publish("$dps/registrations/PUT/iotdps-register/", 1, false, "{}") },
		"status without operation":  func(d *device) { d.Publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1", 1, false, "") },
		"unknown $dps topic":        func(d *device) { d.Publish("$dps/registrations/DELETE/x/?$rid=1", 1, false, "") },
	} {
		t.Run(name, func(t *testing.T) {
			d := dial()
			act(d)
			d.waitLost(t)
		})
	}
	// A hub device cannot subscribe to the provisioning responses.
	hd := e.connectDevice(t, "hub-dev", false)
	hd.SubscribeMultiple(map[string]byte{"$dps/registrations/res/#": 0}, nil)
	hd.waitLost(t)
}

// TestDPSConnectionKeepsDeviceConnected: a provisioning connection whose
// registration id is the id of a connected hub device does not take that
// device's connection over (mochi would, for one client id).
func TestDPSConnectionKeepsDeviceConnected(t *testing.T) {
	e, svc := newDPSEnv(t)
	hubDev := e.connectDevice(t, "twin-1", false)
	key := enrollKey(t, svc, "twin-1")
	d := e.mustConnect(t, dialer{clientID: "twin-1", username: dpsUsername(dpsScope, "twin-1"), password: dpsToken(t, dpsScope, "twin-1", key), clean: false})
	d.subscribe(t, "$dps/registrations/res/#")
	d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=a", 1, `{"registrationId":"twin-1"}`)
	if status, _, _ := dpsAnswer(t, d, "a"); status != "202" {
		t.Fatalf("register: %s", status)
	}
	if !hubDev.IsConnected() || !e.hub.IsConnected(hub.Identity{DeviceID: "twin-1"}) {
		t.Fatal("the hub device lost its connection to a provisioning connection of the same id")
	}
	select {
	case err := <-hubDev.lost:
		t.Fatalf("hub device connection lost: %v", err)
	default:
	}
}

// TestDPSRegisterX509 attests by the TLS client certificate, over TLS and
// over WebSockets.
func TestDPSRegisterX509(t *testing.T) {
	e, svc := newDPSEnv(t)
	ca, _ := certs.NewCA("fleet", time.Now())
	if _, err := svc.PutGroup(context.Background(), "fleet", []byte(fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, ca.CertPEM())), ""); err != nil {
		t.Fatal(err)
	}
	for i, ws := range []bool{false, true} {
		id := fmt.Sprintf("cam-%d", i)
		cert, _ := ca.Issue(id, time.Now())
		d := e.mustConnect(t, dialer{clientID: id, username: dpsUsername(dpsScope, id), cert: &cert, ws: ws, clean: true})
		d.subscribe(t, "$dps/registrations/res/#")
		d.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=1", 1, `{"registrationId":"`+id+`"}`)
		_, _, body := dpsAnswer(t, d, "1")
		d.publish(t, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId="+body["operationId"].(string), 1, "")
		status, _, body := dpsAnswer(t, d, "2")
		rs := body["registrationState"].(map[string]any)
		if status != "200" || rs["x509"].(map[string]any)["enrollmentGroupId"] != "fleet" {
			t.Fatalf("%s: %s %v", id, status, body)
		}
		if err := e.hubCert(id, cert); err != nil {
			t.Errorf("%s cannot authenticate to the hub: %v", id, err)
		}
	}
}

// hubCert authenticates an X.509 device to the hub with its chain.
func (e *env) hubCert(id string, cert tls.Certificate) error {
	tc := cert
	dev := dialer{clientID: id, cert: &tc}
	d, code, err := e.dial(dev)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("CONNACK %d", code)
	}
	d.Disconnect(0)
	return nil
}

// TestParseDPSUsername covers the shapes the SDKs send and the look-alikes.
func TestParseDPSUsername(t *testing.T) {
	for _, tc := range []struct {
		username, clientID, scope, version string
		ok                                 bool
	}{
		{"0ne1/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1", "dev-1", "0ne1", "2019-03-31", true},
		{"0ne1/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-device%2F2.13.0", "dev-1", "0ne1", "2019-03-31", true},
		{"0ne1/registrations/dev-1/?api-version=2021-06-01", "dev-1", "0ne1", "2021-06-01", true},
		{"0ne1/registrations/dev-1/", "dev-1", "0ne1", "", true},
		{"0ne1/registrations/dev-1", "dev-1", "", "", false},
		{"0ne1/registrations/dev-2/api-version=2019-03-31", "dev-1", "", "", false},
		{"localhost/dev-1/?api-version=2021-04-12", "dev-1", "", "", false},
		{"localhost/registrations/?api-version=2021-04-12", "registrations", "", "", false},
		{"localhost/registrations/api-version=2016-11-14", "registrations", "", "", false},
		{"a/b/registrations/dev-1/api-version=1", "dev-1", "", "", false},
		{"/registrations/dev-1/api-version=1", "dev-1", "", "", false},
	} {
		scope, version, ok := parseDPSUsername(tc.username, tc.clientID)
		if ok != tc.ok || scope != tc.scope || version != tc.version {
			t.Errorf("%q, %q: got %q %q %v", tc.username, tc.clientID, scope, version, ok)
		}
		if tc.ok {
			if _, err := parseUsername(tc.username, tc.clientID); err == nil {
				t.Errorf("%q is also a hub username", tc.username)
			}
		}
	}
}

// FuzzParseDPSUsername: no panic, and a username read as a provisioning
// one is never also a hub username for the same client id, so no CONNECT
// can be both.
func FuzzParseDPSUsername(f *testing.F) {
	for _, s := range [][2]string{
		{"0ne00000E11/registrations/dev-1/api-version=2019-03-31&ClientVersion=x", "dev-1"},
		{"localhost/dev-1/?api-version=2021-04-12", "dev-1"},
		{"localhost/registrations/api-version=2016-11-14", "registrations"},
		{"s/registrations/registrations/api-version=1", "registrations"},
		{"s/registrations//api-version=1", ""},
		{"s/registrations/a/b/api-version=1", "a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, username, clientID string) {
		scope, _, ok := parseDPSUsername(username, clientID)
		if !ok {
			return
		}
		if scope == "" || strings.Contains(scope, "/") || !strings.HasPrefix(username, scope+"/registrations/"+clientID+"/") {
			t.Fatalf("%q, %q: scope %q", username, clientID, scope)
		}
		if _, err := parseUsername(username, clientID); err == nil {
			t.Fatalf("%q, %q is both a provisioning and a hub username", username, clientID)
		}
	})
}

// FuzzParseDPSTopic: no panic; what parses is one of the two request
// topics with a $rid, and a status query has an operation id.
func FuzzParseDPSTopic(f *testing.F) {
	for _, s := range []string{
		"$dps/registrations/PUT/iotdps-register/?$rid=1",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.a.b",
		"$dps/registrations/GET/iotdps-get-operationstatus/?%24rid=2&operationId=4%2Ea",
		"$dps/registrations/PUT/iotdps-register/?$rid=",
		"$dps/registrations/PUT/iotdps-register/x",
		"$iothub/twin/GET/?$rid=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		r, err := parseDPSTopic(topic)
		if err != nil {
			return
		}
		if r.rid == "" || !strings.HasPrefix(topic, "$dps/registrations/") || !strings.Contains(topic, r.rid) {
			t.Fatalf("%q: %+v", topic, r)
		}
		if r.register != strings.HasPrefix(topic, dpsPrefixRegister) || (!r.register && r.operationID == "") {
			t.Fatalf("%q: %+v", topic, r)
		}
	})
}
