// SPDX-License-Identifier: MIT

package dps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/internal/sas"
)

// TestRegisterIndividualSymmetricKey provisions a device of an individual
// enrollment: the hub identity gets the enrollment's keys, its device id,
// the edge flag and the initial twin, and the operation reports assigned.
func TestRegisterIndividualSymmetricKey(t *testing.T) {
	f := newFixture(t)
	e := f.putEnrollment(t, "sensor-1", `{"registrationId":"sensor-1","deviceId":"dev-sensor-1","attestation":{"type":"symmetricKey"},
		"capabilities":{"iotEdge":true},"initialTwin":{"tags":{"site":"lab"},"properties":{"desired":{"interval":30}}}}`)
	key := e.Attestation.SymmetricKey.PrimaryKey
	if key == "" || e.Attestation.SymmetricKey.SecondaryKey == "" {
		t.Fatalf("enrollment keys not generated: %+v", e.Attestation.SymmetricKey)
	}
	st := f.register(t, keyCreds(t, "sensor-1", e.Attestation.SymmetricKey.SecondaryKey), "")
	if st.Status != RegAssigned {
		t.Fatalf("status: got %+v, want assigned", st)
	}
	rs := st.RegistrationState
	if rs.AssignedHub != testHubHost || rs.DeviceID != "dev-sensor-1" || rs.Substatus != SubInitialAssignment ||
		rs.RegistrationID != "sensor-1" || rs.ETag == "" || rs.CreatedDateTimeUTC == "" || rs.LastUpdatedDateTimeUTC == "" {
		t.Errorf("registration state: %+v", rs)
	}
	if rs.SymmetricKey == nil || rs.SymmetricKey.EnrollmentGroupID != "" || rs.X509 != nil {
		t.Errorf("attestation result: symmetricKey %+v x509 %+v", rs.SymmetricKey, rs.X509)
	}
	d, err := f.hub.GetDevice(context.Background(), "dev-sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Authentication.Type != hub.AuthSAS || d.Authentication.SymmetricKey.PrimaryKey != key || !d.Capabilities.IotEdge {
		t.Errorf("hub device: %+v", d)
	}
	tw := f.twinOf(t, "dev-sensor-1")
	if tags := tw["tags"].(map[string]any); tags["site"] != "lab" {
		t.Errorf("twin tags: %v", tw["tags"])
	}
	if des := tw["properties"].(map[string]any)["desired"].(map[string]any); des["interval"] != float64(30) {
		t.Errorf("twin desired: %v", des)
	}
	// The device can connect to the hub with the same key.
	tok, _ := sas.NewToken(sas.ResourceURI(testHubHost, "dev-sensor-1", ""), "", key, time.Now().Add(time.Hour))
	if _, err := f.hub.AuthenticateDevice(hub.Identity{DeviceID: "dev-sensor-1"}, tok, nil); err != nil {
		t.Errorf("provisioned device cannot authenticate to the hub: %v", err)
	}
	// The service API shows the registration, also inside the enrollment.
	got, err := f.dps.GetRegistration(context.Background(), "SENSOR-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs.DeviceRegistrationState, *got); diff != "" {
		t.Errorf("GetRegistration differs from the device's view (-device +service):\n%s", diff)
	}
	ge, err := f.dps.GetEnrollment(context.Background(), "sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	if ge.RegistrationState == nil || ge.RegistrationState.DeviceID != "dev-sensor-1" {
		t.Errorf("enrollment's registrationState: %+v", ge.RegistrationState)
	}
	// The status lookup returns the same registration.
	res, err := f.dps.RegistrationStatus(context.Background(), keyCreds(t, "sensor-1", key))
	if err != nil || res.DeviceID != "dev-sensor-1" || res.Status != RegAssigned {
		t.Errorf("RegistrationStatus: %+v, %v", res, err)
	}
}

// TestRegisterGroupSymmetricKey provisions two devices of one group with
// keys derived per registration id; a key derived for another id, or the
// group key itself, is refused.
func TestRegisterGroupSymmetricKey(t *testing.T) {
	f := newFixture(t)
	g := f.putGroup(t, "floor-1", `{"enrollmentGroupId":"floor-1","attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"floor":1}}}`)
	gk := g.Attestation.SymmetricKey.PrimaryKey
	for _, id := range []string{"th-1", "th-2"} {
		k, _ := sas.DeriveDeviceKey(gk, id)
		st := f.register(t, keyCreds(t, id, k), "")
		if st.Status != RegAssigned || st.RegistrationState.DeviceID != id || st.RegistrationState.SymmetricKey.EnrollmentGroupID != "floor-1" {
			t.Fatalf("%s: %+v", id, st.RegistrationState)
		}
		d, err := f.hub.GetDevice(context.Background(), id)
		if err != nil || d.Authentication.SymmetricKey.PrimaryKey != k {
			t.Fatalf("%s: hub device %+v, %v; want the derived key", id, d, err)
		}
		if f.twinOf(t, id)["tags"].(map[string]any)["floor"] != float64(1) {
			t.Errorf("%s: initial twin not applied", id)
		}
	}
	other, _ := sas.DeriveDeviceKey(gk, "th-1")
	for name, c := range map[string]Credentials{
		"key derived for another id": keyCreds(t, "th-3", other),
		"the group key itself":       keyCreds(t, "th-3", gk),
	} {
		_, err := f.dps.Register(context.Background(), c, nil)
		wantError(t, name, err, 401002)
	}
	f.noDevice(t, "th-3")
	page, err := f.dps.QueryGroupRegistrations(context.Background(), "FLOOR-1", []byte(`{"query":"*"}`), 1, "")
	if err != nil || len(page.Items) != 1 || page.Continuation == "" || page.ItemType != ItemRegistration {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page2, err := f.dps.QueryGroupRegistrations(context.Background(), "floor-1", []byte(`{"query":"*"}`), 1, page.Continuation)
	if err != nil || len(page2.Items) != 1 || page2.Continuation != "" {
		t.Fatalf("second page: %+v, %v", page2, err)
	}
}

// TestRegisterRefused covers the device errors: each is the status and
// code the SDKs map, and none leaves anything in the registry or a
// registration state.
func TestRegisterRefused(t *testing.T) {
	f := newFixture(t)
	e := f.putEnrollment(t, "dev-a", `{"attestation":{"type":"symmetricKey"}}`)
	key := e.Attestation.SymmetricKey.PrimaryKey
	f.putEnrollment(t, "dev-off", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+key+`","secondaryKey":"`+key+`"}},"provisioningStatus":"disabled"}`)
	g := f.putGroup(t, "grp-off", `{"attestation":{"type":"symmetricKey"},"provisioningStatus":"disabled"}`)
	gk, _ := sas.DeriveDeviceKey(g.Attestation.SymmetricKey.PrimaryKey, "dev-g")
	expired, _ := sas.NewToken(sas.RegistrationResource(testScope, "dev-a"), sas.RegistrationKeyName, key, time.Now().Add(-time.Hour))
	noSkn, _ := sas.NewToken(sas.RegistrationResource(testScope, "dev-a"), "", key, time.Now().Add(time.Hour))
	otherRes, _ := sas.NewToken(sas.RegistrationResource(testScope, "dev-b"), sas.RegistrationKeyName, key, time.Now().Add(time.Hour))
	wrong := keyCreds(t, "dev-a", sas.GenerateKey())
	scoped := keyCreds(t, "dev-a", key)
	scoped.IDScope = "0neFFFFFFFF"
	cases := []struct {
		name string
		c    Credentials
		body string
		code int
	}{
		{"wrong key", wrong, "", 401002},
		{"unknown ID scope", scoped, "", 401002},
		{"unknown registration id", keyCreds(t, "nobody", key), "", 401002},
		{"disabled enrollment", keyCreds(t, "dev-off", key), "", 401002},
		{"disabled group", keyCreds(t, "dev-g", gk), "", 401002},
		{"expired token", Credentials{IDScope: testScope, RegistrationID: "dev-a", Token: expired}, "", 401002},
		{"token without key name", Credentials{IDScope: testScope, RegistrationID: "dev-a", Token: noSkn}, "", 401002},
		{"token for another registration", Credentials{IDScope: testScope, RegistrationID: "dev-a", Token: otherRes}, "", 401002},
		{"not a token", Credentials{IDScope: testScope, RegistrationID: "dev-a", Token: "Bearer x"}, "", 401002},
		{"no credentials", Credentials{IDScope: testScope, RegistrationID: "dev-a"}, "", 401002},
		{"malformed body", keyCreds(t, "dev-a", key), `{"registrationId":`, 400004},
		{"body not an object", keyCreds(t, "dev-a", key), `"dev-a"`, 400004},
		{"body names another registration", keyCreds(t, "dev-a", key), `{"registrationId":"dev-b"}`, 400004},
		{"invalid registration id", keyCreds(t, "bad id!", key), "", 400004},
		{"TPM", Credentials{IDScope: testScope, RegistrationID: "dev-a"}, `{"registrationId":"dev-a","tpm":{"endorsementKey":"AAA="}}`, 400005},
		{"certificate issuance", keyCreds(t, "dev-a", key), `{"registrationId":"dev-a","clientCertificateCsr":"MIIB"}`, 400005},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.dps.Register(context.Background(), tc.c, []byte(tc.body))
			wantError(t, "Register", err, tc.code)
			if tc.code == 401002 {
				_, err = f.dps.OperationStatus(context.Background(), tc.c, "4.0.x")
				wantError(t, "OperationStatus", err, 401002)
			}
		})
	}
	for _, id := range []string{"dev-a", "dev-off", "dev-g", "nobody", "dev-b"} {
		f.noDevice(t, id)
		if _, err := f.dps.GetRegistration(context.Background(), id); !errors.Is(err, RegistrationNotFound("")) {
			t.Errorf("registration %s: got %v, want none", id, err)
		}
	}
	// An operation id that is not the registration's last is 404.
	st := f.register(t, keyCreds(t, "dev-a", key), "")
	_, err := f.dps.OperationStatus(context.Background(), keyCreds(t, "dev-a", key), st.OperationID+"x")
	wantError(t, "unknown operation", err, 404204)
	_, err = f.dps.RegistrationStatus(context.Background(), keyCreds(t, "dev-off", key))
	wantError(t, "status of a disabled enrollment", err, 401002)
}

// TestIndividualOverridesGroup: a disabled individual enrollment refuses
// its device even though a group's derived key would attest it.
func TestIndividualOverridesGroup(t *testing.T) {
	f := newFixture(t)
	g := f.putGroup(t, "fleet", `{"attestation":{"type":"symmetricKey"}}`)
	k, _ := sas.DeriveDeviceKey(g.Attestation.SymmetricKey.PrimaryKey, "dev-x")
	f.putEnrollment(t, "dev-x", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"`+k+`","secondaryKey":"`+k+`"}},"provisioningStatus":"disabled"}`)
	_, err := f.dps.Register(context.Background(), keyCreds(t, "dev-x", k), nil)
	wantError(t, "device of a group with a disabled individual enrollment", err, 401002)
	f.noDevice(t, "dev-x")
	if err := f.dps.DeleteEnrollment(context.Background(), "dev-x", ""); err != nil {
		t.Fatal(err)
	}
	if st := f.register(t, keyCreds(t, "dev-x", k), ""); st.Status != RegAssigned {
		t.Fatalf("after deleting the individual enrollment: %+v", st)
	}
}

// TestRegisterX509 provisions an individual X.509 device and devices of a
// group whose CA is a root or an intermediate; certificates that are not
// enrolled, chain to another CA or name another registration are refused.
func TestRegisterX509(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	self, _ := certs.SelfSigned("cam-1", now)
	other, _ := certs.SelfSigned("cam-1", now)
	certPEM, _, _ := certs.EncodePEM(self)
	f.putEnrollment(t, "cam-1", fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":%q}}}}}`, certPEM))

	st := f.register(t, certCreds(t, "cam-1", self), "")
	if st.Status != RegAssigned || st.RegistrationState.X509 == nil || st.RegistrationState.X509.CertificateInfo.SHA256Thumbprint != certs.ThumbprintSHA256(self.Leaf) {
		t.Fatalf("individual X.509: %+v", st.RegistrationState)
	}
	d, _ := f.hub.GetDevice(context.Background(), "cam-1")
	if d.Authentication.Type != hub.AuthSelfSigned || *d.Authentication.X509Thumbprint.PrimaryThumbprint != certs.ThumbprintSHA256(self.Leaf) {
		t.Errorf("hub device auth: %+v", d.Authentication)
	}
	if err := f.hubCertAuth("cam-1", self); err != nil {
		t.Errorf("provisioned X.509 device cannot authenticate to the hub: %v", err)
	}

	root, _ := certs.NewRootCA("fleet root", now)
	inter, _ := root.IssueCA("fleet intermediate", now)
	rogue, _ := certs.NewCA("rogue", now)
	f.putGroup(t, "fleet", fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, root.CertPEM()))
	f.putGroup(t, "line-2", fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, inter.CertPEM()))

	viaRoot, _ := root.Issue("cam-2", now)
	viaInter, _ := inter.Issue("cam-3", now)
	st = f.register(t, certCreds(t, "cam-2", viaRoot), "")
	if st.Status != RegAssigned || st.RegistrationState.X509.EnrollmentGroupID != "fleet" {
		t.Fatalf("cam-2: %+v", st.RegistrationState)
	}
	// cam-3's chain reaches the root too; groups are tried in id order, so
	// "fleet" (the root) attests it before "line-2" (the intermediate).
	st = f.register(t, certCreds(t, "cam-3", viaInter), "")
	if st.Status != RegAssigned || st.RegistrationState.X509.EnrollmentGroupID != "fleet" || st.RegistrationState.X509.SigningCertificateInfo == nil {
		t.Fatalf("cam-3: %+v", st.RegistrationState.X509)
	}
	if err := f.hubCertAuth("cam-3", viaInter); err != nil {
		t.Errorf("cam-3 cannot authenticate to the hub: %v", err)
	}

	roguePEM, _ := rogue.Issue("cam-4", now)
	wrongCN, _ := root.Issue("cam-5", now)
	for name, c := range map[string]Credentials{
		"not the enrolled certificate": certCreds(t, "cam-1", other),
		"chains to no enrolled CA":     certCreds(t, "cam-4", roguePEM),
		"common name is another id":    certCreds(t, "cam-6", wrongCN),
	} {
		_, err := f.dps.Register(context.Background(), c, nil)
		wantError(t, name, err, 401002)
	}
	f.noDevice(t, "cam-4")
	f.noDevice(t, "cam-6")
	// A symmetric key for an X.509 enrollment is refused too.
	_, err := f.dps.Register(context.Background(), keyCreds(t, "cam-1", sas.GenerateKey()), nil)
	wantError(t, "key for an X.509 enrollment", err, 401002)
}

// hubCertAuth authenticates an X.509 device to the hub as the MQTT
// adapter does, with the TLS chain.
func (f *fixture) hubCertAuth(id string, cert tls.Certificate) error {
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		chain = append(chain, c)
	}
	_, err := f.hub.AuthenticateDevice(hub.Identity{DeviceID: id}, "", chain)
	return err
}

// TestReprovision: registering again keeps the twin when the policy
// migrates device data and resets it to the initial twin when it does not.
func TestReprovision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		migrate bool
		sub     string
		wantTag any
	}{{true, SubDeviceDataMigrated, "changed"}, {false, SubDeviceDataReset, "initial"}} {
		id := fmt.Sprintf("re-%v", tc.migrate)
		e := f.putEnrollment(t, id, fmt.Sprintf(`{"attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"t":"initial"}},
			"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":%v}}`, tc.migrate))
		c := keyCreds(t, id, e.Attestation.SymmetricKey.PrimaryKey)
		first := f.register(t, c, "")
		if _, err := f.hub.UpdateTwin(ctx, hub.Identity{DeviceID: id}, []byte(`{"tags":{"t":"changed","extra":1},"properties":{"desired":{"d":1}}}`), "", false); err != nil {
			t.Fatal(err)
		}
		again := f.register(t, c, "")
		if again.RegistrationState.Substatus != tc.sub || again.OperationID == first.OperationID ||
			again.RegistrationState.CreatedDateTimeUTC != first.RegistrationState.CreatedDateTimeUTC {
			t.Errorf("migrate=%v: second registration %+v (first %+v)", tc.migrate, again.RegistrationState, first.RegistrationState)
		}
		tw := f.twinOf(t, id)
		if got := tw["tags"].(map[string]any)["t"]; got != tc.wantTag {
			t.Errorf("migrate=%v: tag t = %v, want %v (twin %v)", tc.migrate, got, tc.wantTag, tw)
		}
		_, hasExtra := tw["tags"].(map[string]any)["extra"]
		_, hasD := tw["properties"].(map[string]any)["desired"].(map[string]any)["d"]
		if hasExtra != tc.migrate || hasD != tc.migrate {
			t.Errorf("migrate=%v: extra tag %v, desired d %v", tc.migrate, hasExtra, hasD)
		}
		// The old operation id is no longer the registration's.
		if _, err := f.dps.OperationStatus(ctx, c, first.OperationID); !errors.Is(err, OperationNotFound("")) {
			t.Errorf("old operation: %v", err)
		}
	}
}

// TestRegisterExistingDevice: a device made outside the service is taken
// over with the attested key and keeps its twin, merged with the initial
// twin.
func TestRegisterExistingDevice(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.hub.PutDevice(ctx, &hub.Device{DeviceID: "old-1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.hub.UpdateTwin(ctx, hub.Identity{DeviceID: "old-1"}, []byte(`{"tags":{"a":1}}`), "", false); err != nil {
		t.Fatal(err)
	}
	e := f.putEnrollment(t, "old-1", `{"attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"b":2}}}`)
	st := f.register(t, keyCreds(t, "old-1", e.Attestation.SymmetricKey.PrimaryKey), "")
	if st.RegistrationState.Substatus != SubInitialAssignment {
		t.Errorf("substatus %q", st.RegistrationState.Substatus)
	}
	d, _ := f.hub.GetDevice(ctx, "old-1")
	if d.Authentication.SymmetricKey.PrimaryKey != e.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("hub key not replaced by the enrollment's")
	}
	if tags := f.twinOf(t, "old-1")["tags"].(map[string]any); tags["a"] != float64(1) || tags["b"] != float64(2) {
		t.Errorf("tags %v, want a and b", tags)
	}
}

// TestAssignmentFailure: the hub refusing the device (here an injected
// fault) makes the operation end "failed" with the hub's code, and leaves
// no device.
func TestAssignmentFailure(t *testing.T) {
	f := newFixture(t)
	f.hub.SetReactor(hub.ReactorFunc(func(op string, id hub.Identity) *hub.Fault {
		if op == hub.OpRegistry && id.DeviceID == "unlucky" {
			return &hub.Fault{Err: huberr.Throttled()}
		}
		return nil
	}))
	e := f.putEnrollment(t, "unlucky", `{"attestation":{"type":"symmetricKey"}}`)
	st := f.register(t, keyCreds(t, "unlucky", e.Attestation.SymmetricKey.PrimaryKey), "")
	rs := st.RegistrationState
	if st.Status != RegFailed || rs.Status != RegFailed || rs.ErrorCode != 429001 || rs.ErrorMessage == "" || rs.DeviceID != "" || rs.AssignedHub != "" {
		t.Fatalf("failed registration: %+v", st)
	}
	f.noDevice(t, "unlucky")
}

// TestInitialTwinFailureLeavesNoDevice: when the twin cannot be written
// after the identity is made, the identity is removed again.
func TestInitialTwinFailureLeavesNoDevice(t *testing.T) {
	f := newFixture(t)
	f.hub.SetReactor(hub.ReactorFunc(func(op string, id hub.Identity) *hub.Fault {
		if op == hub.OpUpdateTwin {
			return &hub.Fault{Err: huberr.ServerError("disk on fire")}
		}
		return nil
	}))
	e := f.putEnrollment(t, "twinless", `{"attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"a":1}}}`)
	st := f.register(t, keyCreds(t, "twinless", e.Attestation.SymmetricKey.PrimaryKey), "")
	if st.Status != RegFailed || st.RegistrationState.ErrorCode != 500001 {
		t.Fatalf("got %+v", st.RegistrationState)
	}
	f.noDevice(t, "twinless")
}

// TestCustomAllocation passes the device's payload to the webhook and the
// webhook's payload and initial twin back; a failing webhook fails the
// registration with 400209.
func TestCustomAllocation(t *testing.T) {
	var got allocationRequest
	mode := "ok"
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		switch mode {
		case "ok":
			fmt.Fprintf(w, `{"iotHubHostName":%q,"initialTwin":{"tags":{"by":"webhook"}},"payload":{"answer":42}}`, testHubHost)
		case "elsewhere":
			fmt.Fprint(w, `{"iotHubHostName":"other.azure-devices.net"}`)
		case "500":
			w.WriteHeader(500)
		case "junk":
			fmt.Fprint(w, `not json`)
		}
	}))
	defer ws.Close()
	f := newFixture(t)
	e := f.putEnrollment(t, "custom-1", fmt.Sprintf(`{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom",
		"customAllocationDefinition":{"webhookUrl":%q,"apiVersion":"2019-03-31"},"initialTwin":{"tags":{"by":"enrollment"}}}`, ws.URL))
	c := keyCreds(t, "custom-1", e.Attestation.SymmetricKey.PrimaryKey)
	st := f.register(t, c, `{"registrationId":"custom-1","payload":{"model":"x1"}}`)
	if st.Status != RegAssigned || string(st.RegistrationState.Payload) != `{"answer":42}` {
		t.Fatalf("custom allocation: %+v payload %s", st.RegistrationState, st.RegistrationState.Payload)
	}
	if string(got.DeviceRuntimeContext.Payload) != `{"model":"x1"}` || got.IndividualEnrollment == nil ||
		got.DeviceRuntimeContext.RegistrationID != "custom-1" || !cmp.Equal(got.LinkedHubs, []string{testHubHost}) {
		t.Errorf("webhook request: %+v", got)
	}
	if f.twinOf(t, "custom-1")["tags"].(map[string]any)["by"] != "webhook" {
		t.Errorf("the webhook's initial twin did not win")
	}
	if err := f.hub.DeleteDevice(context.Background(), "custom-1", ""); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"elsewhere", "500", "junk"} {
		mode = m
		st := f.register(t, c, "")
		if st.Status != RegFailed || st.RegistrationState.ErrorCode != 400209 || !strings.Contains(st.RegistrationState.ErrorMessage, "Custom allocation failed") {
			t.Errorf("%s: %+v", m, st.RegistrationState)
		}
		f.noDevice(t, "custom-1")
	}
}
