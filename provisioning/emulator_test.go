// SPDX-License-Identifier: MIT

package provisioning_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/provisioning"
)

// transports are the ways the client reaches the emulator's provisioning
// service; host returns the provisioning host with the port to use.
var transports = []struct {
	name string
	tr   provisioning.Transport
	host func(*emulator.Server) string
}{
	{"https", provisioning.HTTPS, func(s *emulator.Server) string { return s.ProvisioningHost() }},
	{"mqtt", provisioning.MQTT, func(s *emulator.Server) string {
		_, port, _ := net.SplitHostPort(s.MQTTAddr())
		return "localhost:" + port
	}},
	{"mqtt-ws", provisioning.MQTTWebSockets, func(s *emulator.Server) string { return s.ProvisioningHost() }},
}

// forEachTransport runs body once per transport, each on an emulator of
// its own.
func forEachTransport(t *testing.T, body func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport)) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := emulator.RunT(t)
			body(t, srv, tc.host(srv), tc.tr)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// enroll creates an individual enrollment and returns it as stored.
func enroll(t *testing.T, srv *emulator.Server, body string) map[string]any {
	t.Helper()
	out, err := srv.PutEnrollment([]byte(body))
	if err != nil {
		t.Fatalf("PutEnrollment: %v", err)
	}
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return m
}

// enrollGroup creates an enrollment group and returns it as stored.
func enrollGroup(t *testing.T, srv *emulator.Server, body string) map[string]any {
	t.Helper()
	out, err := srv.PutEnrollmentGroup([]byte(body))
	if err != nil {
		t.Fatalf("PutEnrollmentGroup: %v", err)
	}
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return m
}

func primaryKey(m map[string]any) string {
	return m["attestation"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"].(string)
}

// connectAndReport connects the provisioned device to its hub and sends a
// message, proving the assignment is usable.
func connectAndReport(t *testing.T, srv *emulator.Server, res *provisioning.RegistrationResult, opts ...device.Option) {
	t.Helper()
	dc, err := res.NewDeviceClient(append([]device.Option{device.WithRootCAs(srv.CAPool()), device.WithoutRetries()}, opts...)...)
	if err != nil {
		t.Fatalf("NewDeviceClient: %v", err)
	}
	defer dc.Close()
	ctx := ctxT(t)
	if err := dc.Connect(ctx); err != nil {
		t.Fatalf("the provisioned device cannot connect to %s: %v", res.RegistrationState.AssignedHub, err)
	}
	if err := dc.SendMessage(ctx, &device.Message{Body: []byte(`{"hello":"hub"}`)}); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.WaitMessages(res.RegistrationState.DeviceID, 1, 10*time.Second)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != `{"hello":"hub"}` {
		t.Fatalf("the hub recorded %v, %v", msgs, err)
	}
}

// TestRegisterSymmetricKey provisions a device of an individual
// enrollment, then connects it to the assigned hub.
func TestRegisterSymmetricKey(t *testing.T) {
	forEachTransport(t, func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport) {
		e := enroll(t, srv, `{"registrationId":"sensor-1","attestation":{"type":"symmetricKey"},"initialTwin":{"properties":{"desired":{"interval":5}}}}`)
		c, err := provisioning.NewFromSymmetricKey(host, srv.IDScope(), "sensor-1", primaryKey(e),
			provisioning.WithTransport(tr), provisioning.WithRootCAs(srv.CAPool()))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Register(ctxT(t))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		st := res.RegistrationState
		_, mqttPort, _ := net.SplitHostPort(srv.MQTTAddr())
		if res.Status != provisioning.StatusAssigned || !strings.HasPrefix(res.OperationID, "4.") || st.DeviceID != "sensor-1" ||
			st.AssignedHub != "localhost:"+mqttPort || st.Substatus != "initialAssignment" || st.ETag == "" ||
			st.CreatedDateTime.IsZero() || st.LastUpdatedDateTime.IsZero() || st.EnrollmentGroupID != "" {
			t.Fatalf("result: %+v", res)
		}
		cs, err := res.ConnectionString()
		if err != nil || cs != "HostName=localhost:"+mqttPort+";DeviceId=sensor-1;SharedAccessKey="+primaryKey(e) {
			t.Errorf("ConnectionString: %q, %v", cs, err)
		}
		connectAndReport(t, srv, res)
		twin, _ := srv.Twin("sensor-1", "")
		if !strings.Contains(string(twin), `"interval":5`) {
			t.Errorf("initial twin missing: %s", twin)
		}
	})
}

// TestRegisterGroupKey provisions a device of a symmetric-key group with
// its derived key.
func TestRegisterGroupKey(t *testing.T) {
	forEachTransport(t, func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport) {
		g := enrollGroup(t, srv, `{"enrollmentGroupId":"floor-3","attestation":{"type":"symmetricKey"},"capabilities":{"iotEdge":true}}`)
		k, err := provisioning.DeriveDeviceKey(primaryKey(g), "th-7")
		if err != nil {
			t.Fatal(err)
		}
		c, _ := provisioning.NewFromSymmetricKey(host, srv.IDScope(), "th-7", k, provisioning.WithTransport(tr), provisioning.WithRootCAs(srv.CAPool()))
		res, err := c.Register(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.RegistrationState.EnrollmentGroupID != "floor-3" {
			t.Errorf("enrollment group: %+v", res.RegistrationState)
		}
		d, err := srv.Device("th-7")
		if err != nil || !d.IoTEdge {
			t.Fatalf("hub device %+v, %v", d, err)
		}
		connectAndReport(t, srv, res)
	})
}

// TestRegisterX509 provisions an individual X.509 device and one of a CA
// group, then connects both with their certificates.
func TestRegisterX509(t *testing.T) {
	forEachTransport(t, func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport) {
		self := selfSigned(t, "cam-1")
		enroll(t, srv, fmt.Sprintf(`{"registrationId":"cam-1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":%q}}}}}`, certPEM(self)))
		caCert, caKey := newCA(t, "fleet CA")
		enrollGroup(t, srv, fmt.Sprintf(`{"enrollmentGroupId":"fleet","attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":%q}}}}}`, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})))
		member := issue(t, "cam-2", caCert, caKey)
		for id, cert := range map[string]tls.Certificate{"cam-1": self, "cam-2": member} {
			c, err := provisioning.NewFromX509Certificate(host, srv.IDScope(), id, cert, provisioning.WithTransport(tr), provisioning.WithRootCAs(srv.CAPool()))
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Register(ctxT(t))
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if cs, _ := res.ConnectionString(); !strings.HasSuffix(cs, ";DeviceId="+id+";x509=true") {
				t.Errorf("%s: connection string %q", id, cs)
			}
			connectAndReport(t, srv, res)
		}
		otherCA, otherKey := newCA(t, "rogue CA")
		rogue := issue(t, "cam-3", otherCA, otherKey)
		c, _ := provisioning.NewFromX509Certificate(host, srv.IDScope(), "cam-3", rogue, provisioning.WithTransport(tr), provisioning.WithRootCAs(srv.CAPool()))
		_, err := c.Register(ctxT(t))
		var pe *provisioning.Error
		if !errors.Is(err, provisioning.ErrUnauthorized) || !errors.As(err, &pe) || pe.Code != 401002 || pe.Op != "Register" {
			t.Fatalf("certificate of another CA: got %v, want 401002", err)
		}
	})
}

// TestRegisterRefused: the service's refusals are *Error values that
// match the sentinels, and leave nothing in the registry.
func TestRegisterRefused(t *testing.T) {
	forEachTransport(t, func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport) {
		e := enroll(t, srv, `{"registrationId":"dev-1","attestation":{"type":"symmetricKey"}}`)
		off := enroll(t, srv, `{"registrationId":"dev-off","attestation":{"type":"symmetricKey"},"provisioningStatus":"disabled"}`)
		opts := []provisioning.Option{provisioning.WithTransport(tr), provisioning.WithRootCAs(srv.CAPool())}
		for _, tc := range []struct {
			name, scope, id, key string
		}{
			{"wrong key", srv.IDScope(), "dev-1", primaryKey(off)},
			{"unknown ID scope", "0neFFFFFFFF", "dev-1", primaryKey(e)},
			{"unknown registration id", srv.IDScope(), "nobody", primaryKey(e)},
			{"disabled enrollment", srv.IDScope(), "dev-off", primaryKey(off)},
		} {
			c, _ := provisioning.NewFromSymmetricKey(host, tc.scope, tc.id, tc.key, opts...)
			res, err := c.Register(ctxT(t))
			var pe *provisioning.Error
			if res != nil || !errors.Is(err, provisioning.ErrUnauthorized) || !errors.As(err, &pe) || pe.StatusCode != 401 || pe.Code != 401002 {
				t.Errorf("%s: got %v, %v; want ErrUnauthorized with 401002", tc.name, res, err)
			}
			if _, err := srv.Device(tc.id); err == nil && tc.id != "dev-1" {
				t.Errorf("%s: device %s was created", tc.name, tc.id)
			}
		}
		if _, err := srv.Device("dev-1"); err == nil {
			t.Error("refused registrations created dev-1")
		}
	})
}

// TestCustomAllocationPayload: the payload goes to the allocation webhook
// and the webhook's payload comes back in the result; a failing webhook
// ends the registration "failed" with 400209.
func TestCustomAllocationPayload(t *testing.T) {
	forEachTransport(t, func(t *testing.T, srv *emulator.Server, host string, tr provisioning.Transport) {
		fail := false
		var seen json.RawMessage
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in struct {
				DeviceRuntimeContext struct {
					Payload json.RawMessage `json:"payload"`
				} `json:"deviceRuntimeContext"`
			}
			_ = json.NewDecoder(r.Body).Decode(&in)
			seen = in.DeviceRuntimeContext.Payload
			if fail {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, `{"iotHubHostName":"localhost","payload":{"firmware":"2.1"}}`)
		}))
		defer hook.Close()
		e := enroll(t, srv, fmt.Sprintf(`{"registrationId":"custom-1","attestation":{"type":"symmetricKey"},"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":%q,"apiVersion":"2019-03-31"}}`, hook.URL))
		c, _ := provisioning.NewFromSymmetricKey(host, srv.IDScope(), "custom-1", primaryKey(e), provisioning.WithTransport(tr),
			provisioning.WithRootCAs(srv.CAPool()), provisioning.WithPayload(map[string]string{"model": "x1"}))
		res, err := c.Register(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(seen) != `{"model":"x1"}` || string(res.RegistrationState.Payload) != `{"firmware":"2.1"}` {
			t.Errorf("payloads: webhook saw %s, device got %s", seen, res.RegistrationState.Payload)
		}
		fail = true
		res, err = c.Register(ctxT(t))
		var pe *provisioning.Error
		if res == nil || res.Status != provisioning.StatusFailed || !errors.Is(err, provisioning.ErrRegistrationFailed) ||
			!errors.As(err, &pe) || pe.Code != 400209 || !errors.Is(err, provisioning.ErrBadRequest) {
			t.Fatalf("failing webhook: %+v, %v", res, err)
		}
		if _, err := res.ConnectionString(); err == nil {
			t.Error("a failed registration has a connection string")
		}
	})
}

// certPEM returns the PEM of a certificate's leaf.
func certPEM(c tls.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

func template(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
}

// selfSigned is a self-signed client certificate with CN=cn.
func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := template(t, cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// newCA is a CA certificate and its key.
func newCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := template(t, cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// issue is a client certificate for cn signed by the CA, with the CA in
// its chain.
func issue(t *testing.T, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := template(t, cn)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}
}
