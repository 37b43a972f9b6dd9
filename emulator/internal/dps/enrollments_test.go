// SPDX-License-Identifier: MIT

package dps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/internal/sas"
)

// TestEnrollmentDefaults: what the service fills in on create, and what it
// keeps on replace.
func TestEnrollmentDefaults(t *testing.T) {
	f := newFixture(t)
	e := f.putEnrollment(t, "Dev-1", `{"registrationId":"Dev-1","attestation":{"type":"symmetricKey"}}`)
	if e.ProvisioningStatus != StatusEnabled || e.AllocationPolicy != AllocHashed || e.Capabilities == nil || e.Capabilities.IotEdge ||
		e.ReprovisionPolicy == nil || !e.ReprovisionPolicy.MigrateDeviceData || !e.ReprovisionPolicy.UpdateHubAssignment ||
		e.IotHubHostName != testHubHost || e.ETag == "" || e.CreatedDateTimeUTC == "" || e.CreatedDateTimeUTC != e.LastUpdatedDateTimeUTC {
		t.Errorf("defaults: %+v", e)
	}
	if _, err := time.Parse(timeLayout, e.CreatedDateTimeUTC); err != nil {
		t.Errorf("createdDateTimeUtc %q: %v", e.CreatedDateTimeUTC, err)
	}
	time.Sleep(2 * time.Millisecond)
	e2, err := f.dps.PutEnrollment(context.Background(), "dev-1", []byte(`{"attestation":{"type":"symmetricKey"},"provisioningStatus":"disabled"}`), e.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if e2.CreatedDateTimeUTC != e.CreatedDateTimeUTC || e2.LastUpdatedDateTimeUTC == e.LastUpdatedDateTimeUTC || e2.ETag == e.ETag ||
		e2.ProvisioningStatus != StatusDisabled || e2.Attestation.SymmetricKey.PrimaryKey == e.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("replace: %+v (was %+v)", e2, e)
	}
	// The old etag no longer matches; ids are case-insensitive.
	_, err = f.dps.PutEnrollment(context.Background(), "DEV-1", []byte(`{"attestation":{"type":"symmetricKey"}}`), e.ETag)
	wantError(t, "stale If-Match", err, 412002)
	wantError(t, "delete with stale If-Match", f.dps.DeleteEnrollment(context.Background(), "dev-1", e.ETag), 412002)
	if err := f.dps.DeleteEnrollment(context.Background(), "dev-1", e2.ETag); err != nil {
		t.Fatal(err)
	}
	_, err = f.dps.GetEnrollment(context.Background(), "dev-1")
	wantError(t, "get after delete", err, 404201)
	wantError(t, "delete again", f.dps.DeleteEnrollment(context.Background(), "dev-1", ""), 404201)
	_, err = f.dps.PutEnrollment(context.Background(), "dev-1", []byte(`{"attestation":{"type":"symmetricKey"}}`), e2.ETag)
	wantError(t, "If-Match on a missing enrollment", err, 404201)
}

// TestEnrollmentValidation: every refused enrollment is 400 with the code
// and stores nothing.
func TestEnrollmentValidation(t *testing.T) {
	f := newFixture(t)
	leaf, _ := certs.SelfSigned("cam", time.Now())
	leafPEM, _, _ := certs.EncodePEM(leaf)
	short := "c2hvcnQ=" // 5 bytes
	cases := []struct {
		name, body string
		code       int
	}{
		{"empty body", ``, 400004},
		{"malformed JSON", `{"attestation":`, 400004},
		{"id mismatch", `{"registrationId":"other","attestation":{"type":"symmetricKey"}}`, 400004},
		{"no attestation type", `{"attestation":{}}`, 400004},
		{"unknown attestation type", `{"attestation":{"type":"password"}}`, 400004},
		{"TPM", `{"attestation":{"type":"tpm","tpm":{"endorsementKey":"AAAA"}}}`, 400005},
		{"short key", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + short + `"}}}`, 400004},
		{"key not base64", `{"attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"***"}}}`, 400004},
		{"x509 without certificates", `{"attestation":{"type":"x509","x509":{}}}`, 400004},
		{"x509 with CA references", `{"attestation":{"type":"x509","x509":{"caReferences":{"primary":"my-ca"}}}}`, 400005},
		{"x509 signing certificates on an individual", fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, leafPEM), 400004},
		{"x509 certificate garbage", `{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"bm90IGEgY2VydA=="}}}}}`, 400004},
		{"bad status", `{"attestation":{"type":"symmetricKey"},"provisioningStatus":"paused"}`, 400004},
		{"bad allocation", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"random"}`, 400004},
		{"custom without webhook", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom"}`, 400004},
		{"custom webhook not http", `{"attestation":{"type":"symmetricKey"},"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"ftp://x"}}`, 400004},
		{"another hub", `{"attestation":{"type":"symmetricKey"},"iotHubHostName":"other.azure-devices.net"}`, 400004},
		{"another hub in the list", `{"attestation":{"type":"symmetricKey"},"iotHubs":["` + testHubHost + `","other.azure-devices.net"]}`, 400004},
		{"tags not an object", `{"attestation":{"type":"symmetricKey"},"initialTwin":{"tags":[1]}}`, 400004},
		{"desired with a $ name", `{"attestation":{"type":"symmetricKey"},"initialTwin":{"properties":{"desired":{"$bad":1}}}}`, 400004},
		{"invalid device id", `{"attestation":{"type":"symmetricKey"},"deviceId":"a b"}`, 400004},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.dps.PutEnrollment(context.Background(), "dev-v", []byte(tc.body), "")
			wantError(t, "PutEnrollment", err, tc.code)
		})
	}
	_, err := f.dps.PutEnrollment(context.Background(), "bad/id", []byte(`{"attestation":{"type":"symmetricKey"}}`), "")
	wantError(t, "invalid registration id", err, 400004)
	_, err = f.dps.GetEnrollment(context.Background(), "dev-v")
	wantError(t, "nothing stored", err, 404201)
	// A group takes a CA, not a leaf, and not client certificates.
	_, err = f.dps.PutGroup(context.Background(), "g", []byte(fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, leafPEM)), "")
	wantError(t, "group with a leaf certificate", err, 400004)
	_, err = f.dps.PutGroup(context.Background(), "g", []byte(fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":%q}}}}}`, leafPEM)), "")
	wantError(t, "group with client certificates", err, 400004)
	_, err = f.dps.GetGroup(context.Background(), "g")
	wantError(t, "no group stored", err, 404203)
}

// TestX509EnrollmentHidesCertificate: the service keeps the certificate
// and returns its info, accepting PEM, base64 PEM and base64 DER.
func TestX509EnrollmentHidesCertificate(t *testing.T) {
	f := newFixture(t)
	leaf, _ := certs.SelfSigned("cam-9", time.Now())
	pemText, _, _ := certs.EncodePEM(leaf)
	forms := map[string]string{
		"pem":        string(pemText),
		"base64 pem": b64(pemText),
		"base64 der": b64(leaf.Leaf.Raw),
	}
	for name, cert := range forms {
		e := f.putEnrollment(t, "cam-9", fmt.Sprintf(`{"attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":%q}}}}}`, cert))
		p := e.Attestation.X509.ClientCertificates.Primary
		if p.Certificate != "" || p.Info == nil || p.Info.SHA1Thumbprint != certs.Thumbprint(leaf.Leaf) ||
			p.Info.SHA256Thumbprint != certs.ThumbprintSHA256(leaf.Leaf) || !strings.Contains(p.Info.SubjectName, "CN=cam-9") || p.Info.Version != 3 {
			t.Errorf("%s: primary %+v", name, p)
		}
		got, _ := f.dps.GetEnrollment(context.Background(), "cam-9")
		b, _ := json.Marshal(got)
		if strings.Contains(string(b), `"certificate"`) {
			t.Errorf("%s: GET returns the certificate: %s", name, b)
		}
		st := f.register(t, certCreds(t, "cam-9", leaf), "")
		if st.Status != RegAssigned {
			t.Errorf("%s: registration %+v", name, st)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestGroupLifecycle: create, read, attestation mechanism, replace with
// If-Match, delete; registration states outlive the group.
func TestGroupLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.putGroup(t, "grp", `{"attestation":{"type":"symmetricKey"},"capabilities":{"iotEdge":true}}`)
	am, err := f.dps.GroupAttestation(ctx, "GRP")
	if err != nil || am.SymmetricKey.PrimaryKey != g.Attestation.SymmetricKey.PrimaryKey {
		t.Fatalf("attestation mechanism: %+v, %v", am, err)
	}
	k, _ := sas.DeriveDeviceKey(g.Attestation.SymmetricKey.SecondaryKey, "edge-1")
	if st := f.register(t, keyCreds(t, "edge-1", k), ""); st.Status != RegAssigned {
		t.Fatal(st)
	}
	d, _ := f.hub.GetDevice(ctx, "edge-1")
	if !d.Capabilities.IotEdge || d.DeviceScope == "" {
		t.Errorf("edge device from a group: %+v", d)
	}
	_, err = f.dps.PutGroup(ctx, "grp", []byte(`{"attestation":{"type":"symmetricKey"}}`), "stale")
	wantError(t, "stale If-Match", err, 412002)
	if err := f.dps.DeleteGroup(ctx, "grp", g.ETag); err != nil {
		t.Fatal(err)
	}
	wantError(t, "delete again", f.dps.DeleteGroup(ctx, "grp", ""), 404203)
	if _, err := f.dps.GetRegistration(ctx, "edge-1"); err != nil {
		t.Errorf("registration state gone with its group: %v", err)
	}
	_, err = f.dps.Register(ctx, keyCreds(t, "edge-1", k), nil)
	wantError(t, "device of a deleted group", err, 401002)
	st, _ := f.dps.GetRegistration(ctx, "edge-1")
	wantError(t, "delete registration with stale etag", f.dps.DeleteRegistration(ctx, "edge-1", "x"), 412002)
	if err := f.dps.DeleteRegistration(ctx, "edge-1", st.ETag); err != nil {
		t.Fatal(err)
	}
	wantError(t, "registration deleted", f.dps.DeleteRegistration(ctx, "edge-1", ""), 404202)
}

// TestQueryAndBulk pages through enrollments and applies bulk operations.
func TestQueryAndBulk(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("q-%d", i))
	}
	var enr []string
	for _, id := range ids[:3] {
		enr = append(enr, fmt.Sprintf(`{"registrationId":%q,"attestation":{"type":"symmetricKey"}}`, id))
	}
	res, err := f.dps.BulkEnrollments(ctx, []byte(`{"mode":"create","enrollments":[`+strings.Join(enr, ",")+`]}`))
	if err != nil || !res.IsSuccessful || len(res.Errors) != 0 {
		t.Fatalf("bulk create: %+v, %v", res, err)
	}
	res, err = f.dps.BulkEnrollments(ctx, []byte(`{"mode":"create","enrollments":[`+enr[0]+`,{"registrationId":"q-3","attestation":{"type":"symmetricKey"}},{"registrationId":"q-4","attestation":{"type":"tpm"}}]}`))
	if err != nil || res.IsSuccessful || len(res.Errors) != 2 || res.Errors[0].RegistrationID != "q-0" || res.Errors[0].ErrorCode != 409005 || res.Errors[1].ErrorCode != 400005 {
		t.Fatalf("bulk create with duplicates: %+v, %v", res, err)
	}
	var seen []string
	cont := ""
	for pages := 0; ; pages++ {
		p, err := f.dps.QueryEnrollments(ctx, []byte(`{"query":"SELECT * FROM enrollments"}`), 3, cont)
		if err != nil {
			t.Fatal(err)
		}
		if pages > 3 || p.ItemType != ItemEnrollment {
			t.Fatalf("page %d: %+v", pages, p)
		}
		for _, it := range p.Items {
			var e IndividualEnrollment
			_ = json.Unmarshal(it, &e)
			seen = append(seen, e.RegistrationID)
		}
		if cont = p.Continuation; cont == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "q-0,q-1,q-2,q-3" {
		t.Errorf("queried %v", seen)
	}
	for _, q := range []string{`{"query":"SELECT * FROM enrollments WHERE x = 1"}`, `{}`, `nope`} {
		_, err := f.dps.QueryEnrollments(ctx, []byte(q), 0, "")
		if err == nil {
			t.Errorf("query %s accepted", q)
		}
	}
	_, err = f.dps.QueryEnrollments(ctx, []byte(`{"query":"*"}`), 0, "!!")
	wantError(t, "bad continuation", err, 400004)
	res, err = f.dps.BulkEnrollments(ctx, []byte(`{"mode":"delete","enrollments":[{"registrationId":"q-0"},{"registrationId":"missing"}]}`))
	if err != nil || res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].ErrorCode != 404201 {
		t.Fatalf("bulk delete: %+v, %v", res, err)
	}
	if _, err := f.dps.GetEnrollment(ctx, "q-0"); !errors.Is(err, EnrollmentNotFound("")) {
		t.Errorf("q-0 after bulk delete: %v", err)
	}
	for _, body := range []string{`{"mode":"merge","enrollments":[{}]}`, `{"mode":"create","enrollments":[]}`} {
		_, err := f.dps.BulkEnrollments(ctx, []byte(body))
		wantError(t, body, err, 400004)
	}
	gp, err := f.dps.QueryGroups(ctx, []byte(`{"query":"*"}`), 0, "")
	if err != nil || len(gp.Items) != 0 || gp.ItemType != ItemEnrollmentGroup {
		t.Errorf("empty group query: %+v, %v", gp, err)
	}
}

// TestServiceAuthorization checks policy tokens: signature, expiry, host
// and rights.
func TestServiceAuthorization(t *testing.T) {
	f := newFixture(t)
	readOnlyKey := sas.GenerateKey()
	f.dps.policies["reader"] = Policy{Name: "reader", PrimaryKey: readOnlyKey, Rights: EnrollmentRead}
	tok := func(host, name, key string, exp time.Duration) string {
		s, err := sas.NewToken(host, name, key, time.Now().Add(exp))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := f.dps.AuthorizeService(tok(testHubHost, OwnerPolicy, testOwnerKey, time.Hour), EnrollmentWrite); err != nil {
		t.Errorf("owner: %v", err)
	}
	if err := f.dps.AuthorizeService(tok(testHubHost+":8443", "reader", readOnlyKey, time.Hour), EnrollmentRead|EnrollmentWrite); err != nil {
		t.Errorf("reader reading: %v", err)
	}
	for name, h := range map[string]string{
		"reader writing":  tok(testHubHost, "reader", readOnlyKey, time.Hour),
		"wrong key":       tok(testHubHost, OwnerPolicy, readOnlyKey, time.Hour),
		"unknown policy":  tok(testHubHost, "nobody", testOwnerKey, time.Hour),
		"expired":         tok(testHubHost, OwnerPolicy, testOwnerKey, -time.Hour),
		"other host":      tok("other.example", OwnerPolicy, testOwnerKey, time.Hour),
		"device token":    tok(testHubHost, "", testOwnerKey, time.Hour),
		"empty":           "",
		"not a SAS token": "Bearer abc",
	} {
		wantError(t, name, f.dps.AuthorizeService(h, EnrollmentWrite), 401002)
	}
}
