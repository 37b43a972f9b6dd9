// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/provisioning"
)

// TestProvisioningFromConfig declares provisioning policies, enrollments
// and groups (keys and certificates) in the config file, provisions a
// device of each, and restarts: the enrollments, a change made through
// the service API and the registration states survive, and the config
// does not overwrite the change.
func TestProvisioningFromConfig(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	self, _ := certs.SelfSigned("cam-a", now)
	selfPEM, _, _ := certs.EncodePEM(self)
	ca, _ := certs.NewCA("fleet CA", now)
	os.WriteFile(filepath.Join(dir, "cam-a.pem"), selfPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "fleet-ca.pem"), ca.CertPEM(), 0o600)
	const key = "c2Vuc29yLWEtcHJpbWFyeS1rZXktMDEyMzQ1Njc4OQ=="
	const groupKey = "Zmxvb3ItMS1ncm91cC1rZXktMDEyMzQ1Njc4OWFi"
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(`{
		"provisioningPolicies": [{"name": "enroller", "primaryKey": "ZW5yb2xsZXItcG9saWN5LWtleS0wMTIzNDU2Nzg5", "rights": ["EnrollmentRead", "EnrollmentWrite"]}],
		"enrollments": [
			{"registrationId": "sensor-a", "primaryKey": "`+key+`", "deviceId": "dev-sensor-a", "tags": {"site": "lab"}, "desired": {"interval": 10}},
			{"registrationId": "cam-a", "certificateFile": "cam-a.pem"}
		],
		"enrollmentGroups": [
			{"enrollmentGroupId": "floor-1", "primaryKey": "`+groupKey+`", "iotEdge": true},
			{"enrollmentGroupId": "fleet", "certificateFile": "fleet-ca.pem"}
		]}`), 0o600)
	cfg, err := emulator.LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	start := func() *emulator.Server {
		s, err := emulator.New(emulator.Options{DataDir: data, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			s.Close()
			t.Fatal(err)
		}
		return s
	}
	srv := start()
	register := func(s *emulator.Server, id string, newClient func(host string, opts ...provisioning.Option) (*provisioning.Client, error)) (*provisioning.RegistrationResult, error) {
		c, err := newClient(s.ProvisioningHost(), provisioning.WithTransport(provisioning.HTTPS), provisioning.WithRootCAs(s.CAPool()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return c.Register(ctx)
	}
	withKey := func(id, k string) func(string, ...provisioning.Option) (*provisioning.Client, error) {
		return func(host string, opts ...provisioning.Option) (*provisioning.Client, error) {
			return provisioning.NewFromSymmetricKey(host, srv.IDScope(), id, k, opts...)
		}
	}
	derived, _ := provisioning.DeriveDeviceKey(groupKey, "edge-7")
	member, _ := ca.Issue("cam-b", now)
	for _, tc := range []struct {
		id, deviceID string
		newClient    func(string, ...provisioning.Option) (*provisioning.Client, error)
	}{
		{"sensor-a", "dev-sensor-a", withKey("sensor-a", key)},
		{"edge-7", "edge-7", withKey("edge-7", derived)},
		{"cam-a", "cam-a", func(h string, o ...provisioning.Option) (*provisioning.Client, error) {
			return provisioning.NewFromX509Certificate(h, srv.IDScope(), "cam-a", self, o...)
		}},
		{"cam-b", "cam-b", func(h string, o ...provisioning.Option) (*provisioning.Client, error) {
			return provisioning.NewFromX509Certificate(h, srv.IDScope(), "cam-b", member, o...)
		}},
	} {
		res, err := register(srv, tc.id, tc.newClient)
		if err != nil || res.RegistrationState.DeviceID != tc.deviceID {
			t.Fatalf("%s: %+v, %v", tc.id, res, err)
		}
	}
	if d, _ := srv.Device("edge-7"); !d.IoTEdge {
		t.Error("edge-7 from an iotEdge group is not an edge device")
	}
	if tw, _ := srv.Twin("dev-sensor-a", ""); !strings.Contains(string(tw), `"site":"lab"`) || !strings.Contains(string(tw), `"interval":10`) {
		t.Errorf("initial twin from the config: %s", tw)
	}
	// The config's provisioning policy opens the service API.
	enroller := newREST(t, srv, "HostName="+srv.ProvisioningHost()+";SharedAccessKeyName=enroller;SharedAccessKey=ZW5yb2xsZXItcG9saWN5LWtleS0wMTIzNDU2Nzg5")
	if code, body := enroller.do("GET", "/enrollments/sensor-a", nil); code != 200 {
		t.Fatalf("GET enrollment with the enroller policy: %d %s", code, body)
	}
	if code, _ := enroller.do("GET", "/registrations/sensor-a", nil); code != 401 {
		t.Errorf("registration states with a policy without RegistrationStatusRead: got %d, want 401", code)
	}
	// Disable sensor-a through the service API, then restart.
	if _, err := srv.PutEnrollment([]byte(`{"registrationId":"sensor-a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + key + `","secondaryKey":"` + key + `"}},"provisioningStatus":"disabled"}`)); err != nil {
		t.Fatal(err)
	}
	before, _ := srv.RegistrationState("edge-7")
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = start()
	defer srv.Close()
	after, err := srv.RegistrationState("edge-7")
	if err != nil || string(after) != string(before) {
		t.Fatalf("registration state across restart:\nbefore %s\nafter  %s (%v)", before, after, err)
	}
	_, err = register(srv, "sensor-a", withKey("sensor-a", key))
	if !errors.Is(err, provisioning.ErrUnauthorized) {
		t.Fatalf("sensor-a, disabled through the API before the restart: got %v, want ErrUnauthorized", err)
	}
	if _, err := register(srv, "edge-7", withKey("edge-7", derived)); err != nil {
		t.Fatalf("edge-7 after restart: %v", err)
	}
	// Reset empties the provisioning service too.
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	var pe *emulator.ProvisioningError
	if _, err := srv.RegistrationState("edge-7"); !errors.As(err, &pe) || pe.Status != 404 || pe.Code != 404202 {
		t.Fatalf("registration state after Reset: %v", err)
	}
}

// TestIDScopeOption: the ID scope is the one configured; devices naming
// another are refused.
func TestIDScopeOption(t *testing.T) {
	srv := emulator.RunT(t, func(o *emulator.Options) { o.IDScope = "0ne0000ABCD" })
	if srv.IDScope() != "0ne0000ABCD" {
		t.Fatalf("IDScope %q", srv.IDScope())
	}
	out, err := srv.PutEnrollment([]byte(`{"registrationId":"d1","attestation":{"type":"symmetricKey"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	json.Unmarshal(out, &e)
	for scope, wantOK := range map[string]bool{"0ne0000ABCD": true, emulator.DefaultIDScope: false} {
		c, _ := provisioning.NewFromSymmetricKey(srv.ProvisioningHost(), scope, "d1", e.Attestation.SymmetricKey.PrimaryKey,
			provisioning.WithTransport(provisioning.HTTPS), provisioning.WithRootCAs(srv.CAPool()))
		_, err := c.Register(context.Background())
		if (err == nil) != wantOK {
			t.Errorf("scope %s: %v", scope, err)
		}
	}
	if _, err := emulator.New(emulator.Options{InMemory: true, IDScope: "not a scope!"}); err == nil {
		t.Error("an invalid ID scope was accepted")
	}
	if _, err := srv.PutEnrollment([]byte(`{"registrationId":"d2","attestation":{"type":"tpm"}}`)); err == nil {
		t.Error("a TPM enrollment was accepted")
	}
}

// TestProvisioningConfigErrors: bad provisioning declarations name the
// problem and the file.
func TestProvisioningConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"bad enrollment id", `{"enrollments":[{"registrationId":"a b"}]}`, "enrollments[0]"},
		{"duplicate enrollment", `{"enrollments":[{"registrationId":"a"},{"registrationId":"A"}]}`, "declared twice"},
		{"duplicate group", `{"enrollmentGroups":[{"enrollmentGroupId":"g"},{"enrollmentGroupId":"g"}]}`, "declared twice"},
		{"bad provisioning right", `{"provisioningPolicies":[{"name":"p","primaryKey":"MDEyMzQ1Njc4OWFiY2RlZg==","rights":["RegistryRead"]}]}`, "unknown provisioning permission"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			os.WriteFile(p, []byte(tc.body), 0o600)
			if _, err := emulator.LoadConfigFile(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, p, tc.want)
			}
		})
	}
	// Errors found when applying: a missing certificate file, a key that
	// is not base64.
	for _, tc := range []struct{ name, body, want string }{
		{"missing certificate", `{"enrollments":[{"registrationId":"a","certificateFile":"nope.pem"}]}`, "enrollment a"},
		{"bad key", `{"enrollmentGroups":[{"enrollmentGroupId":"g","primaryKey":"***"}]}`, "enrollment group g"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			os.WriteFile(p, []byte(tc.body), 0o600)
			c, err := emulator.LoadConfigFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := emulator.New(emulator.Options{InMemory: true, Config: c}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
