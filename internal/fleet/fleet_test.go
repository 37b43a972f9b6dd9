// SPDX-License-Identifier: MIT

package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

const waitTime = 20 * time.Second

// newHub starts an emulator and returns it with a service client.
func newHub(t *testing.T) (*emulator.Server, *service.Client) {
	t.Helper()
	s := emulator.RunT(t)
	svc, err := service.NewFromConnectionString(s.ConnectionString(), service.WithRootCAs(s.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return s, svc
}

func newFleet(t *testing.T, s *emulator.Server, creds []Credential, opts Options) *Fleet {
	t.Helper()
	opts.HostName, opts.Addr, opts.TLS, opts.Devices = s.HostName(), s.MQTTAddr(), s.TLSConfig(), creds
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if failed, err := f.Connect(ctx, nil); failed > 0 {
		t.Fatalf("%d devices did not connect: %v", failed, err)
	}
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFleetAgainstEmulator: devices created in bulk connect, send
// telemetry the hub records, report properties the twin shows, answer a
// direct method and acknowledge a desired patch.
func TestFleetAgainstEmulator(t *testing.T) {
	for _, auth := range []Auth{AuthSAS, AuthX509} {
		t.Run(string(auth), func(t *testing.T) {
			s, svc := newHub(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			ids := DeviceIDs("sim", 3)
			creds, err := CreateDevices(ctx, svc, ids, auth, "", func(i int) []byte { return []byte(`{"n":` + string(rune('0'+i)) + `}`) })
			if err != nil {
				t.Fatal(err)
			}
			f := newFleet(t, s, creds, Options{AckDesired: true, MethodResponse: []byte(`{"ok":true}`)})
			if got := f.Connected(); got != 3 {
				t.Fatalf("got %d connected, want 3", got)
			}
			d := f.Devices()[1]
			if err := d.Send(ctx, "k=v", []byte(`{"t":1}`)); err != nil {
				t.Fatal(err)
			}
			msgs, err := s.Messages(ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 || string(msgs[0].Body) != `{"t":1}` || msgs[0].Properties["k"] != "v" {
				t.Fatalf("got messages %+v, want one {\"t\":1} with k=v", msgs)
			}
			if err := d.Report(ctx, []byte(`{"fw":"2.0"}`)); err != nil {
				t.Fatal(err)
			}
			tw, err := svc.GetTwin(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if got := string(tw.Properties.Reported); !strings.Contains(got, `"fw":"2.0"`) {
				t.Fatalf("got reported %s, want fw 2.0", got)
			}
			res, err := svc.InvokeMethod(ctx, ids[2], service.MethodCall{Name: "reboot", ResponseTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != 200 || string(res.Payload) != `{"ok":true}` {
				t.Fatalf("got method result %d %s, want 200 {\"ok\":true}", res.Status, res.Payload)
			}
			if _, err := svc.UpdateTwin(ctx, ids[0], &service.Twin{Properties: service.TwinProperties{Desired: []byte(`{"rate":5}`)}}, "*"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the desired patch acknowledged", func() bool {
				tw, err := svc.GetTwin(ctx, ids[0])
				if err != nil {
					t.Fatal(err)
				}
				var rep struct {
					DesiredAck struct {
						Version int `json:"version"`
					} `json:"desiredAck"`
				}
				_ = json.Unmarshal(tw.Properties.Reported, &rep)
				return rep.DesiredAck.Version == 2
			})
			st := f.Stats()
			if st.Acked != 1 || st.Methods != 1 || st.Desired != 1 || st.Errors != 0 {
				t.Fatalf("got stats %+v, want 1 acked, 1 method, 1 desired, no errors", st)
			}
		})
	}
}

// TestFleetRun: an open-loop rate is kept to within a small margin, and a
// closed loop keeps sending until the context ends.
func TestFleetRun(t *testing.T) {
	s, svc := newHub(t)
	ctx := context.Background()
	creds, err := CreateDevices(ctx, svc, DeviceIDs("run", 4), AuthSAS, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, s, creds, Options{})
	run, cancel := context.WithTimeout(ctx, time.Second)
	f.Run(run, Load{TelemetryRate: 40, ReportRate: 20, MessageSize: 64})
	cancel()
	eventually(t, "every message acknowledged", func() bool { st := f.Stats(); return st.Acked == st.Sent })
	st := f.Stats()
	// 40/s for one second, paced in 10 ms steps.
	if st.Sent < 36 || st.Sent > 41 {
		t.Fatalf("sent %d messages in 1s at 40/s", st.Sent)
	}
	eventually(t, "the reports acknowledged", func() bool { return f.Stats().Reported >= 18 })
	run, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	f.Run(run, Load{TelemetryRate: -1})
	cancel()
	if after := f.Stats(); after.Acked <= st.Acked {
		t.Fatalf("closed loop sent nothing: %+v", after)
	}
}

// TestFleetRefused: a wrong key is refused with CONNACK 5 and counted.
func TestFleetRefused(t *testing.T) {
	s, svc := newHub(t)
	ctx := context.Background()
	if _, err := CreateDevices(ctx, svc, []string{"bad-key"}, AuthSAS, "", nil); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{HostName: s.HostName(), Addr: s.MQTTAddr(), TLS: s.TLSConfig(),
		Devices: []Credential{{DeviceID: "bad-key", Key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	failed, err := f.Connect(ctx, nil)
	var ce *ConnackError
	if failed != 1 || !errorsAs(err, &ce) || ce.Code != 5 {
		t.Fatalf("got %d failed, %v; want 1 refused with CONNACK 5", failed, err)
	}
}

// allowAll is mochi's allow-all hook, for the bare-broker test.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string                                              { return "allow-all" }
func (allowAll) Provides(b byte) bool                                    { return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck }
func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// TestRequesterThroughBareBroker: a request published on a device's
// devicebound topic comes back as its telemetry through a plain broker.
func TestRequesterThroughBareBroker(t *testing.T) {
	cert, pool := serverCert(t)
	b := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := b.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := b.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})); err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tcfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	f, err := New(Options{HostName: "localhost", Addr: addr, TLS: tcfg, C2D: true, Echo: true,
		Devices: []Credential{{DeviceID: "d1", Key: "AAAA"}, {DeviceID: "d2", Key: "AAAA"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if failed, err := f.Connect(ctx, nil); failed > 0 {
		t.Fatal(err)
	}
	q, err := DialRequester(ctx, addr, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for range 3 {
		if err := q.Request(ctx, "d2", []byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Stats().C2D; got != 3 {
		t.Fatalf("devices got %d requests, want 3", got)
	}
}

func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
