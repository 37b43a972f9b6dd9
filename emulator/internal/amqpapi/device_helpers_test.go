// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// devClient is a device (or module) client on a go-amqp connection, the
// way the SDKs are: it put its token on $cbs (or brought a certificate) and
// attaches links on one session.
type devClient struct {
	e    *env
	id   hub.Identity
	conn *goamqp.Conn
	sess *goamqp.Session
}

// connectDevice dials and puts a token for id.
func (e *env) connectDevice(tb testing.TB, via transport, id hub.Identity, key string) *devClient {
	tb.Helper()
	c := e.dial(tb, via, nil)
	newCBS(tb, c).mustPut(tb, audience(id), deviceToken(tb, id, key, later()))
	return &devClient{e: e, id: id, conn: c, sess: newSession(tb, c)}
}

// audience is the CBS audience of an identity's token.
func audience(id hub.Identity) string {
	a := hostName + "/devices/" + url.PathEscape(id.DeviceID)
	if id.ModuleID != "" {
		a += "/modules/" + url.PathEscape(id.ModuleID)
	}
	return a
}

// path is the identity's address of a device node: "messages/events", ...
func (d *devClient) path(suffix string) string { return devicePath(d.id, suffix) }

func devicePath(id hub.Identity, suffix string) string {
	p := "/devices/" + url.PathEscape(id.DeviceID)
	if id.ModuleID != "" {
		p += "/modules/" + url.PathEscape(id.ModuleID)
	}
	return p + "/" + suffix
}

// sender attaches a sender to the identity's node.
func (d *devClient) sender(tb testing.TB, suffix string, opts *goamqp.SenderOptions) *goamqp.Sender {
	tb.Helper()
	s, err := d.sess.NewSender(ctxT(tb), d.path(suffix), opts)
	if err != nil {
		tb.Fatalf("attach sender to %s: %v", d.path(suffix), err)
	}
	return s
}

// receiver attaches a receiver from the identity's node.
func (d *devClient) receiver(tb testing.TB, suffix string, opts *goamqp.ReceiverOptions) *goamqp.Receiver {
	tb.Helper()
	r, err := d.sess.NewReceiver(ctxT(tb), d.path(suffix), opts)
	if err != nil {
		tb.Fatalf("attach receiver to %s: %v", d.path(suffix), err)
	}
	return r
}

// methodLinks attaches the method pair as the SDKs do, sender first.
func (d *devClient) methodLinks(tb testing.TB) (*goamqp.Sender, *goamqp.Receiver) {
	tb.Helper()
	props := map[string]any{"com.microsoft:api-version": "2021-04-12", "com.microsoft:channel-correlation-id": "methods:" + d.id.String()}
	snd := d.sender(tb, "methods/devicebound", &goamqp.SenderOptions{Properties: props})
	rcv := d.receiver(tb, "methods/devicebound", &goamqp.ReceiverOptions{Properties: props})
	return snd, rcv
}

// twinLinks attaches the twin pair as Node does: a sender that sends
// settled, and a receiver.
func (d *devClient) twinLinks(tb testing.TB) (*goamqp.Sender, *goamqp.Receiver) {
	tb.Helper()
	props := map[string]any{"com.microsoft:api-version": "2021-04-12", "com.microsoft:channel-correlation-id": "twin:" + d.id.String()}
	snd := d.sender(tb, "twin", &goamqp.SenderOptions{Properties: props})
	rcv := d.receiver(tb, "twin", &goamqp.ReceiverOptions{Properties: props})
	return snd, rcv
}

// receive waits for the next message on r.
func receive(tb testing.TB, r *goamqp.Receiver) *goamqp.Message {
	tb.Helper()
	m, err := r.Receive(ctxT(tb), nil)
	if err != nil {
		tb.Fatalf("receive on %s: %v", r.Address(), err)
	}
	return m
}

// nothingOn checks that no message arrives on r for a short while.
func nothingOn(tb testing.TB, r *goamqp.Receiver, what string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := r.Receive(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("%s: got %v, %v; want nothing", what, m, err)
	}
}

// telemetry returns what the hub recorded from id.
func (e *env) telemetry(tb testing.TB, id hub.Identity) []*hub.Message {
	tb.Helper()
	ms, err := e.hub.Telemetry(id.DeviceID, id.ModuleID, 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return ms
}

// addIdentity registers a SAS device or module (its device must exist)
// and returns its primary key.
func (e *env) addIdentity(tb testing.TB, id hub.Identity) string {
	tb.Helper()
	if id.ModuleID == "" {
		return e.addDevice(tb, id.DeviceID)
	}
	return e.addModule(tb, id.DeviceID, id.ModuleID)
}

// addModule registers a SAS module and returns its primary key.
func (e *env) addModule(tb testing.TB, deviceID, moduleID string) string {
	tb.Helper()
	m, err := e.hub.PutModule(context.Background(), &hub.Module{DeviceID: deviceID, ModuleID: moduleID}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return m.Authentication.SymmetricKey.PrimaryKey
}

// addX509Device registers a device that authenticates with a self-signed
// certificate and returns the TLS configuration its client dials with.
func (e *env) addX509Device(tb testing.TB, id string) *tls.Config {
	tb.Helper()
	cert, err := testutil.SelfSigned(id)
	if err != nil {
		tb.Fatal(err)
	}
	tp := testutil.Thumbprint(cert)
	if _, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: id, Authentication: hub.Authentication{
		Type: hub.AuthSelfSigned, X509Thumbprint: &hub.X509Thumbprint{PrimaryThumbprint: &tp}}}, ""); err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{RootCAs: e.roots, ServerName: hostName, Certificates: []tls.Certificate{cert}}
}

// x509SASL are the ways an X.509 device opens a connection: SASL
// EXTERNAL, or no SASL at all (Node sends the bare AMQP header).
var x509SASL = []struct {
	name string
	typ  goamqp.SASLType
}{{"EXTERNAL", goamqp.SASLTypeExternal("")}, {"no SASL", nil}}

// dotNetGUID reads a lock token's delivery tag as the C# SDK does: new
// Guid(tag).ToString().
func dotNetGUID(tag []byte) string {
	if len(tag) != 16 {
		return string(tag)
	}
	var u amqp.UUID
	copy(u[:], []byte{tag[3], tag[2], tag[1], tag[0], tag[5], tag[4], tag[7], tag[6]})
	copy(u[8:], tag[8:])
	return u.String()
}
