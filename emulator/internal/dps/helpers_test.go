// SPDX-License-Identifier: MIT

package dps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

const (
	testScope   = "0ne00000E11"
	testHubHost = "myhub.example"
)

// testOwnerKey signs the service tokens of the tests.
var testOwnerKey = base64.StdEncoding.EncodeToString([]byte("provisioning-owner-key-for-tests"))

// fixture is a hub and a provisioning service over one temporary store.
type fixture struct {
	hub *hub.Hub
	dps *Service
	db  *store.DB
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(db, hub.Config{HostName: testHubHost, Policies: hub.DefaultPolicies(testOwnerKey)})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s, err := New(db, Config{IDScope: testScope, HostName: testHubHost, AssignedHub: func() string { return testHubHost },
		Policies: DefaultPolicies(testOwnerKey), Hub: h})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &fixture{hub: h, dps: s, db: db}
}

// putEnrollment stores an individual enrollment given as JSON.
func (f *fixture) putEnrollment(t *testing.T, id, body string) *IndividualEnrollment {
	t.Helper()
	e, err := f.dps.PutEnrollment(context.Background(), id, []byte(body), "")
	if err != nil {
		t.Fatalf("PutEnrollment(%s): %v", id, err)
	}
	return e
}

// putGroup stores an enrollment group given as JSON.
func (f *fixture) putGroup(t *testing.T, id, body string) *EnrollmentGroup {
	t.Helper()
	g, err := f.dps.PutGroup(context.Background(), id, []byte(body), "")
	if err != nil {
		t.Fatalf("PutGroup(%s): %v", id, err)
	}
	return g
}

// keyCreds are the credentials of a symmetric-key device.
func keyCreds(t *testing.T, regID, key string) Credentials {
	t.Helper()
	tok, err := sas.NewToken(sas.RegistrationResource(testScope, regID), sas.RegistrationKeyName, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return Credentials{IDScope: testScope, RegistrationID: regID, Token: tok}
}

// certCreds are the credentials of an X.509 device: its TLS chain.
func certCreds(t *testing.T, regID string, cert tls.Certificate) Credentials {
	t.Helper()
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	return Credentials{IDScope: testScope, RegistrationID: regID, Chain: chain}
}

// register runs a registration to its end, as a device does: register,
// then query the operation once.
func (f *fixture) register(t *testing.T, c Credentials, body string) *RegistrationOperationStatus {
	t.Helper()
	if body == "" {
		body = `{"registrationId":"` + c.RegistrationID + `"}`
	}
	op, err := f.dps.Register(context.Background(), c, []byte(body))
	if err != nil {
		t.Fatalf("Register(%s): %v", c.RegistrationID, err)
	}
	if op.Status != RegAssigning || op.OperationID == "" || op.RegistrationState != nil {
		t.Fatalf("Register(%s) answered %+v; want status assigning with an operation id and no state", c.RegistrationID, op)
	}
	st, err := f.dps.OperationStatus(context.Background(), c, op.OperationID)
	if err != nil {
		t.Fatalf("OperationStatus(%s): %v", c.RegistrationID, err)
	}
	return st
}

// wantError checks that err is the DPS error with the given code.
func wantError(t *testing.T, what string, err error, code int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v, want DPS error %d", what, err, code)
	}
	if e.Code != code || e.Status != code/1000 {
		t.Fatalf("%s: got %d/%d %q, want %d", what, e.Status, e.Code, e.Message, code)
	}
}

// noDevice checks that the hub has no device id.
func (f *fixture) noDevice(t *testing.T, id string) {
	t.Helper()
	if _, err := f.hub.GetDevice(context.Background(), id); !errors.Is(err, huberr.DeviceNotFound("")) {
		t.Fatalf("device %s: got %v, want it not registered", id, err)
	}
}

// twinOf returns the device's twin as generic JSON.
func (f *fixture) twinOf(t *testing.T, id string) map[string]any {
	t.Helper()
	tw, err := f.hub.GetTwin(context.Background(), hub.Identity{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tw)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
