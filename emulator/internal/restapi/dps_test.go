// SPDX-License-Identifier: MIT

package restapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

const (
	dpsScope      = "0ne00000E11"
	dpsAPIVersion = "2021-10-01"
	devAPIVersion = "2019-03-31"
)

// dpsEnv is a hub and its provisioning service behind the REST handler,
// on a real clock (device certificates are issued for now) and over TLS
// that asks for client certificates, as the emulator's listener does.
type dpsEnv struct {
	*env
	dps *dps.Service
}

func newDPSEnv(t *testing.T) *dpsEnv {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(db, hub.Config{HostName: testHost, Policies: hub.DefaultPolicies(ownerKey)})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s, err := dps.New(db, dps.Config{IDScope: dpsScope, HostName: testHost, AssignedHub: func() string { return testHost },
		Policies: dps.DefaultPolicies(ownerKey), Hub: h})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(New(Options{Hub: h, DPS: s}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	client := srv.Client()
	client.Timeout = 20 * time.Second
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &dpsEnv{env: &env{t: t, hub: h, srv: srv, client: client}, dps: s}
}

// svcToken is a provisioning service token of the owner policy.
func (e *dpsEnv) svcToken() string {
	return e.tokenWith(testHost, dps.OwnerPolicy, ownerKey, time.Now().Add(time.Hour))
}

// svc calls the service API as provisioningserviceowner.
func (e *dpsEnv) svc(method, path string, body any, header map[string]string) response {
	e.t.Helper()
	return e.do(request{method: method, path: path + "?api-version=" + dpsAPIVersion, auth: e.svcToken(), body: body, header: header, noVersion: true})
}

// regToken is a device's registration token.
func (e *dpsEnv) regToken(rid, key string) string {
	return e.tokenWith(sas.RegistrationResource(dpsScope, rid), sas.RegistrationKeyName, key, time.Now().Add(time.Hour))
}

// device calls the device API with a token.
func (e *dpsEnv) device(method, path, tok string, body any) response {
	e.t.Helper()
	return e.do(request{method: method, path: path + "?api-version=" + devAPIVersion, auth: tok, body: body, noVersion: true})
}

// dpsError decodes and checks a DPS error answer.
func dpsError(t *testing.T, what string, r response, status, code int) {
	t.Helper()
	wantStatus(t, what, r, status)
	var b struct {
		ErrorCode    int    `json:"errorCode"`
		TrackingID   string `json:"trackingId"`
		Message      string `json:"message"`
		TimestampUTC string `json:"timestampUtc"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("%s: body %s: %v", what, r.body, err)
	}
	if b.ErrorCode != code || b.Message == "" || b.TrackingID == "" || b.TrackingID != r.header.Get("x-ms-request-id") {
		t.Fatalf("%s: got %s (request id %q), want errorCode %d", what, r.body, r.header.Get("x-ms-request-id"), code)
	}
	if _, err := time.Parse(time.RFC3339Nano, b.TimestampUTC); err != nil {
		t.Fatalf("%s: timestampUtc %q: %v", what, b.TimestampUTC, err)
	}
}

// TestDPSServiceRoutes drives every service route the Node and C#
// provisioning service SDKs call.
func TestDPSServiceRoutes(t *testing.T) {
	e := newDPSEnv(t)
	r := e.svc("PUT", "/enrollments/dev-1", map[string]any{"registrationId": "dev-1", "attestation": map[string]any{"type": "symmetricKey"},
		"initialTwin": map[string]any{"tags": map[string]any{"a": 1}}}, nil)
	wantStatus(t, "PUT enrollment", r, 200)
	enr := decode[dps.IndividualEnrollment](t, r)
	if enr.ETag == "" || enr.Attestation.SymmetricKey.PrimaryKey == "" || enr.IotHubHostName != testHost {
		t.Fatalf("PUT enrollment answered %s", r.body)
	}
	wantStatus(t, "GET enrollment", e.svc("GET", "/enrollments/dev-1", nil, nil), 200)
	dpsError(t, "PUT with stale If-Match", e.svc("PUT", "/enrollments/dev-1", map[string]any{"attestation": map[string]any{"type": "symmetricKey"}}, map[string]string{"If-Match": "nope"}), 412, 412002)
	am := e.svc("POST", "/enrollments/dev-1/attestationmechanism", nil, nil)
	wantStatus(t, "attestation mechanism", am, 200)
	if a := decode[dps.AttestationMechanism](t, am); a.SymmetricKey.PrimaryKey != enr.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("attestation mechanism: %s", am.body)
	}
	bulk := e.svc("POST", "/enrollments", map[string]any{"mode": "create", "enrollments": []any{
		map[string]any{"registrationId": "dev-2", "attestation": map[string]any{"type": "symmetricKey"}},
		map[string]any{"registrationId": "dev-3", "attestation": map[string]any{"type": "symmetricKey"}},
	}}, nil)
	wantStatus(t, "bulk", bulk, 200)
	if res := decode[dps.BulkEnrollmentOperationResult](t, bulk); !res.IsSuccessful {
		t.Errorf("bulk: %s", bulk.body)
	}
	q := e.svc("POST", "/enrollments/query", map[string]string{"query": "*"}, map[string]string{"x-ms-max-item-count": "2"})
	wantStatus(t, "query", q, 200)
	if items := decode[[]dps.IndividualEnrollment](t, q); len(items) != 2 || q.header.Get("x-ms-continuation") == "" || q.header.Get("x-ms-item-type") != dps.ItemEnrollment {
		t.Fatalf("query page 1: %s headers %v", q.body, q.header)
	}
	q2 := e.svc("POST", "/enrollments/query", map[string]string{"query": "*"}, map[string]string{"x-ms-max-item-count": "2", "x-ms-continuation": q.header.Get("x-ms-continuation")})
	if items := decode[[]dps.IndividualEnrollment](t, q2); len(items) != 1 || q2.header.Get("x-ms-continuation") != "" {
		t.Fatalf("query page 2: %s headers %v", q2.body, q2.header)
	}
	dpsError(t, "bad page size", e.svc("POST", "/enrollments/query", map[string]string{"query": "*"}, map[string]string{"x-ms-max-item-count": "-1"}), 400, 400004)

	for _, prefix := range []string{"/enrollmentGroups", "/enrollmentgroups"} {
		g := e.svc("PUT", prefix+"/grp-1", map[string]any{"enrollmentGroupId": "grp-1", "attestation": map[string]any{"type": "symmetricKey"}}, nil)
		wantStatus(t, prefix+" PUT", g, 200)
		wantStatus(t, prefix+" GET", e.svc("GET", prefix+"/grp-1", nil, nil), 200)
		wantStatus(t, prefix+" attestation mechanism", e.svc("POST", prefix+"/grp-1/attestationmechanism", nil, nil), 200)
		gq := e.svc("POST", prefix+"/query", map[string]string{"query": "SELECT * FROM enrollmentGroups"}, nil)
		if items := decode[[]dps.EnrollmentGroup](t, gq); len(items) != 1 || gq.header.Get("x-ms-item-type") != dps.ItemEnrollmentGroup {
			t.Fatalf("%s query: %s", prefix, gq.body)
		}
		wantStatus(t, prefix+" DELETE", e.svc("DELETE", prefix+"/grp-1", nil, nil), 204)
		dpsError(t, prefix+" GET deleted", e.svc("GET", prefix+"/grp-1", nil, nil), 404, 404203)
	}

	// A registration, then its state through the service API.
	key := enr.Attestation.SymmetricKey.PrimaryKey
	wantStatus(t, "register", e.device("PUT", "/"+dpsScope+"/registrations/dev-1/register", e.regToken("dev-1", key), map[string]string{"registrationId": "dev-1"}), 202)
	rs := e.svc("GET", "/registrations/dev-1", nil, nil)
	wantStatus(t, "GET registration", rs, 200)
	st := decode[dps.DeviceRegistrationState](t, rs)
	if st.Status != dps.RegAssigned || st.DeviceID != "dev-1" || st.AssignedHub != testHost {
		t.Fatalf("registration state: %s", rs.body)
	}
	g := e.svc("PUT", "/enrollmentGroups/grp-2", map[string]any{"attestation": map[string]any{"type": "symmetricKey"}}, nil)
	gk := decode[dps.EnrollmentGroup](t, g).Attestation.SymmetricKey.PrimaryKey
	dk, _ := sas.DeriveDeviceKey(gk, "member-1")
	wantStatus(t, "register group member", e.device("PUT", "/"+dpsScope+"/registrations/member-1/register", e.regToken("member-1", dk), map[string]string{"registrationId": "member-1"}), 202)
	rq := e.svc("POST", "/registrations/grp-2/query", map[string]string{"query": "*"}, nil)
	if items := decode[[]dps.DeviceRegistrationState](t, rq); len(items) != 1 || items[0].RegistrationID != "member-1" || rq.header.Get("x-ms-item-type") != dps.ItemRegistration {
		t.Fatalf("registration query: %s", rq.body)
	}
	dpsError(t, "DELETE registration with stale etag", e.svc("DELETE", "/registrations/dev-1", nil, map[string]string{"If-Match": "x"}), 412, 412002)
	wantStatus(t, "DELETE registration", e.svc("DELETE", "/registrations/dev-1", nil, map[string]string{"If-Match": st.ETag}), 204)
	dpsError(t, "GET deleted registration", e.svc("GET", "/registrations/dev-1", nil, nil), 404, 404202)
	wantStatus(t, "DELETE enrollment", e.svc("DELETE", "/enrollments/dev-1", nil, nil), 204)
	dpsError(t, "GET deleted enrollment", e.svc("GET", "/enrollments/dev-1", nil, nil), 404, 404201)
	// The hub device stays: the service does not delete identities.
	if _, err := e.hub.GetDevice(context.Background(), "dev-1"); err != nil {
		t.Errorf("hub device after the enrollment was deleted: %v", err)
	}
	// /emulator/reset empties the provisioning service too.
	reset := e.do(request{method: "POST", path: "/emulator/reset", auth: e.tokenWith(testHost, hub.OwnerPolicy, ownerKey, time.Now().Add(time.Hour)), noVersion: true})
	wantStatus(t, "reset", reset, 204)
	dpsError(t, "enrollment after reset", e.svc("GET", "/enrollments/dev-2", nil, nil), 404, 404201)
}

// TestDPSServiceAuth: the service API wants a provisioning-service policy
// token; hub tokens and bad tokens get 401002 and change nothing.
func TestDPSServiceAuth(t *testing.T) {
	e := newDPSEnv(t)
	body := map[string]any{"attestation": map[string]any{"type": "symmetricKey"}}
	hubTok := e.tokenWith(testHost, hub.OwnerPolicy, ownerKey, time.Now().Add(time.Hour))
	for name, auth := range map[string]string{
		"none":           "",
		"hub policy":     hubTok,
		"expired":        e.tokenWith(testHost, dps.OwnerPolicy, ownerKey, time.Now().Add(-time.Hour)),
		"wrong key":      e.tokenWith(testHost, dps.OwnerPolicy, sas.GenerateKey(), time.Now().Add(time.Hour)),
		"another host":   e.tokenWith("other.example", dps.OwnerPolicy, ownerKey, time.Now().Add(time.Hour)),
		"registration":   e.regToken("dev-1", ownerKey),
		"not a SAS here": "Basic dXNlcjpwYXNz",
	} {
		r := e.do(request{method: "PUT", path: "/enrollments/dev-1?api-version=" + dpsAPIVersion, auth: auth, body: body, noVersion: true})
		dpsError(t, name, r, 401, 401002)
	}
	dpsError(t, "no api-version", e.do(request{method: "GET", path: "/enrollments/dev-1", auth: e.svcToken(), noVersion: true}), 400, 400004)
	dpsError(t, "nothing stored", e.svc("GET", "/enrollments/dev-1", nil, nil), 404, 404201)
	// And a provisioning token opens no hub route.
	r := e.do(request{method: "GET", path: "/devices", auth: e.svcToken()})
	wantStatus(t, "hub route with a DPS token", r, 401)
	dpsError(t, "malformed enrollment", e.svc("PUT", "/enrollments/dev-1", `{"attestation":`, nil), 400, 400004)
	dpsError(t, "TPM enrollment", e.svc("PUT", "/enrollments/dev-1", map[string]any{"attestation": map[string]any{"type": "tpm"}}, nil), 400, 400005)
	dpsError(t, "body too large", e.svc("PUT", "/enrollments/dev-1", strings.Repeat(" ", maxBody+1), nil), 413, 413001)
}

// TestDPSDeviceRoutesSymmetricKey registers over HTTPS as the Node and C
// SDKs do: PUT register (202, retry-after), GET the operation (200,
// assigned), then the status lookup.
func TestDPSDeviceRoutesSymmetricKey(t *testing.T) {
	e := newDPSEnv(t)
	r := e.svc("PUT", "/enrollments/sensor-7", map[string]any{"attestation": map[string]any{"type": "symmetricKey"}, "capabilities": map[string]bool{"iotEdge": true}}, nil)
	key := decode[dps.IndividualEnrollment](t, r).Attestation.SymmetricKey.PrimaryKey
	tok := e.regToken("sensor-7", key)
	base := "/" + dpsScope + "/registrations/sensor-7"
	reg := e.device("PUT", base+"/register", tok, map[string]any{"registrationId": "sensor-7", "payload": map[string]int{"a": 1}})
	wantStatus(t, "register", reg, 202)
	if reg.header.Get("Retry-After") != "1" || !strings.HasPrefix(reg.header.Get("Content-Type"), "application/json") {
		t.Errorf("register headers: %v", reg.header)
	}
	op := decode[dps.RegistrationOperationStatus](t, reg)
	if op.Status != "assigning" || !strings.HasPrefix(op.OperationID, "4.") || op.RegistrationState != nil {
		t.Fatalf("register answered %s", reg.body)
	}
	st := e.device("GET", base+"/operations/"+op.OperationID, tok, nil)
	wantStatus(t, "operation status", st, 200)
	var raw map[string]any
	_ = json.Unmarshal(st.body, &raw)
	rs, _ := raw["registrationState"].(map[string]any)
	if raw["status"] != "assigned" || raw["operationId"] != op.OperationID || rs["assignedHub"] != testHost || rs["deviceId"] != "sensor-7" ||
		rs["status"] != "assigned" || rs["substatus"] != "initialAssignment" || rs["etag"] == nil || rs["createdDateTimeUtc"] == nil || rs["lastUpdatedDateTimeUtc"] == nil {
		t.Fatalf("operation status: %s", st.body)
	}
	if _, ok := rs["symmetricKey"]; !ok {
		t.Errorf("registrationState has no symmetricKey member: %s", st.body)
	}
	lookup := e.device("POST", base, tok, map[string]string{"registrationId": "sensor-7"})
	wantStatus(t, "status lookup", lookup, 200)
	if res := decode[dps.DeviceRegistrationResult](t, lookup); res.DeviceID != "sensor-7" {
		t.Errorf("status lookup: %s", lookup.body)
	}
	d, err := e.hub.GetDevice(context.Background(), "sensor-7")
	if err != nil || !d.Capabilities.IotEdge {
		t.Fatalf("hub device: %+v, %v", d, err)
	}

	// The errors of the device API.
	wrong := e.regToken("sensor-7", sas.GenerateKey())
	dpsError(t, "wrong key", e.device("PUT", base+"/register", wrong, map[string]string{"registrationId": "sensor-7"}), 401, 401002)
	dpsError(t, "no token", e.device("PUT", base+"/register", "", map[string]string{"registrationId": "sensor-7"}), 401, 401002)
	dpsError(t, "unknown scope", e.device("PUT", "/0neFFFFFFFF/registrations/sensor-7/register", tok, map[string]string{"registrationId": "sensor-7"}), 401, 401002)
	dpsError(t, "unknown registration", e.device("PUT", "/"+dpsScope+"/registrations/ghost/register", e.regToken("ghost", key), map[string]string{"registrationId": "ghost"}), 401, 401002)
	dpsError(t, "malformed body", e.device("PUT", base+"/register", tok, `{"registrationId":`), 400, 400004)
	dpsError(t, "other registration in the body", e.device("PUT", base+"/register", tok, map[string]string{"registrationId": "other"}), 400, 400004)
	dpsError(t, "TPM", e.device("PUT", base+"/register", "", map[string]any{"registrationId": "sensor-7", "tpm": map[string]string{"endorsementKey": "AAAA"}}), 400, 400005)
	dpsError(t, "unknown operation", e.device("GET", base+"/operations/4.abc.def", tok, nil), 404, 404204)
	dpsError(t, "operation with a wrong key", e.device("GET", base+"/operations/"+op.OperationID, wrong, nil), 401, 401002)
	dpsError(t, "no api-version", e.do(request{method: "PUT", path: base + "/register", auth: tok, body: "{}", noVersion: true}), 400, 400004)
	dpsError(t, "invalid registration id", e.device("PUT", "/"+dpsScope+"/registrations/bad%20id/register", tok, "{}"), 400, 400004)
	if _, err := e.hub.GetDevice(context.Background(), "ghost"); err == nil {
		t.Error("a refused registration made a device")
	}
}

// TestDPSDeviceRoutesX509 registers an X.509 device by the client
// certificate of its TLS connection, individually and through a CA group.
func TestDPSDeviceRoutesX509(t *testing.T) {
	e := newDPSEnv(t)
	now := time.Now()
	self, _ := certs.SelfSigned("cam-1", now)
	selfPEM, _, _ := certs.EncodePEM(self)
	ca, _ := certs.NewCA("fleet", now)
	member, _ := ca.Issue("cam-2", now)
	rogue, _ := certs.NewCA("rogue", now)
	stranger, _ := rogue.Issue("cam-3", now)
	wantStatus(t, "enroll cam-1", e.svc("PUT", "/enrollments/cam-1", json.RawMessage(fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":%q}}}}}`, selfPEM)), nil), 200)
	wantStatus(t, "enroll fleet", e.svc("PUT", "/enrollmentGroups/fleet", json.RawMessage(fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, ca.CertPEM())), nil), 200)
	for _, tc := range []struct {
		rid  string
		cert tls.Certificate
		want int
	}{{"cam-1", self, 202}, {"cam-2", member, 202}, {"cam-3", stranger, 401}, {"cam-2", self, 401}} {
		c := e.withCert(tc.cert)
		r := c.do(request{method: "PUT", path: "/" + dpsScope + "/registrations/" + tc.rid + "/register?api-version=" + devAPIVersion,
			body: map[string]string{"registrationId": tc.rid}, noVersion: true})
		if tc.want == 401 {
			dpsError(t, tc.rid+" refused", r, 401, 401002)
			continue
		}
		wantStatus(t, tc.rid, r, tc.want)
		op := decode[dps.RegistrationOperationStatus](t, r)
		st := c.do(request{method: "GET", path: "/" + dpsScope + "/registrations/" + tc.rid + "/operations/" + op.OperationID + "?api-version=" + devAPIVersion, noVersion: true})
		res := decode[dps.RegistrationOperationStatus](t, st)
		if res.Status != dps.RegAssigned || res.RegistrationState.X509 == nil || res.RegistrationState.DeviceID != tc.rid {
			t.Fatalf("%s: %s", tc.rid, st.body)
		}
	}
	if _, err := e.hub.GetDevice(context.Background(), "cam-3"); err == nil {
		t.Error("cam-3, whose certificate chains to no enrolled CA, was created")
	}
}

// withCert returns e with a client that presents cert.
func (e *dpsEnv) withCert(cert tls.Certificate) *env {
	c := *e.env
	tr := e.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	c.client = &http.Client{Transport: tr, Timeout: e.client.Timeout}
	return &c
}
