// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/wsconn"
)

// azeventhubs v1.4.0 leaves the claim renewer of a client's $management
// link running after Close (it sleeps until the token's renewal time):
// the client's goroutine, not ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/internal.(*Namespace).startNegotiateClaimRenewer.func3"))
}

// waitTime bounds every wait for a network event.
const waitTime = 10 * time.Second

// hostName is the test hub's host name, and so "localhost" its event hub.
const hostName = "localhost"

// env is a hub with the AMQP adapter on loopback: TLS and plain listeners,
// and an HTTPS test server mounting the WebSocket handler at both paths.
type env struct {
	hub      *hub.Hub
	srv      *Server
	ws       *httptest.Server
	roots    *x509.CertPool
	ownerKey string
	clock    *clock.Clock
}

func testLogger() *slog.Logger {
	if os.Getenv("AMQPAPI_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type envOption func(*hub.Config, *Options)

// withClock runs the hub on clk (for token expiry).
func withClock(clk *clock.Clock) envOption {
	return func(c *hub.Config, _ *Options) { c.Clock = clk }
}

// withPartitions sets the event hub's partition count.
func withPartitions(n int) envOption {
	return func(c *hub.Config, _ *Options) { c.Partitions = n }
}

func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		tb.Fatal(err)
	}
	closeDB := sync.OnceValue(db.Close)
	tb.Cleanup(func() { _ = closeDB() })
	e := &env{ownerKey: sas.GenerateKey()}
	hc := hub.Config{HostName: hostName, Policies: hub.DefaultPolicies(e.ownerKey)}
	o := Options{Addr: "127.0.0.1:0", PlainAddr: "127.0.0.1:0", Logger: testLogger(), replyWait: 5 * time.Second}
	for _, f := range opts {
		f(&hc, &o)
	}
	if hc.Clock == nil {
		hc.Clock = clock.New()
	}
	e.clock = hc.Clock
	e.hub, err = hub.New(db, hc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.hub.Close)
	mat, err := certs.Ensure(tb.TempDir(), []string{hostName}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	e.roots = mat.Pool
	cfg := &tls.Config{Certificates: []tls.Certificate{mat.Server}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	o.Hub, o.TLSConfig = e.hub, cfg
	e.srv = New(o)
	if err := e.srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.srv.Close() })
	mux := http.NewServeMux()
	mux.Handle("/$iothub/websocket", e.srv.WebSocketHandler())
	mux.Handle("/$servicebus/websocket", e.srv.WebSocketHandler())
	e.ws = httptest.NewUnstartedServer(mux)
	e.ws.TLS = cfg.Clone()
	e.ws.StartTLS()
	// Close the hijacked WebSocket connections (the adapter's) first.
	tb.Cleanup(e.ws.Close)
	return e
}

func (e *env) policyKey(name string) string {
	p, ok := e.hub.Policy(name)
	if !ok {
		panic("no policy " + name)
	}
	return p.PrimaryKey
}

// policyToken signs a token of a policy for resource.
func (e *env) policyToken(tb testing.TB, policy, resource string, expiry time.Time) string {
	tb.Helper()
	tok, err := sas.NewToken(resource, policy, e.policyKey(policy), expiry)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// addDevice registers a SAS device and returns its primary key.
func (e *env) addDevice(tb testing.TB, id string) string {
	tb.Helper()
	d, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: id}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return d.Authentication.SymmetricKey.PrimaryKey
}

func deviceToken(tb testing.TB, id hub.Identity, key string, expiry time.Time) string {
	tb.Helper()
	tok, err := sas.NewToken(sas.ResourceURI(hostName, id.DeviceID, id.ModuleID), "", key, expiry)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func later() time.Time { return time.Now().Add(time.Hour) }

// transport is how a test client reaches the server.
type transport int

const (
	viaPlain transport = iota
	viaTLS
	viaWebSocket        // /$iothub/websocket
	viaServiceBusSocket // /$servicebus/websocket
)

var transports = []struct {
	name string
	via  transport
}{{"plain", viaPlain}, {"tls", viaTLS}, {"websocket", viaWebSocket}, {"servicebus-websocket", viaServiceBusSocket}}

// dial connects a go-amqp client (ANONYMOUS unless opts says otherwise).
func (e *env) dial(tb testing.TB, via transport, opts *goamqp.ConnOptions) *goamqp.Conn {
	tb.Helper()
	c, err := e.tryDial(via, opts)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func (e *env) tryDial(via transport, opts *goamqp.ConnOptions) (*goamqp.Conn, error) {
	if opts == nil {
		opts = &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	switch via {
	case viaTLS:
		o := *opts
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{RootCAs: e.roots, ServerName: hostName}
		}
		return goamqp.Dial(ctx, "amqps://"+e.srv.Addr().String(), &o)
	case viaWebSocket, viaServiceBusSocket:
		path := "/$iothub/websocket"
		if via == viaServiceBusSocket {
			path = "/$servicebus/websocket"
		}
		nc, err := dialWebSocket(ctx, e.ws, path, e.roots)
		if err != nil {
			return nil, err
		}
		return goamqp.NewConn(ctx, nc, opts)
	}
	return goamqp.Dial(ctx, "amqp://"+e.srv.PlainAddr().String(), opts)
}

// dialWebSocket opens an AMQPWSB10 WebSocket to the test HTTPS server.
func dialWebSocket(ctx context.Context, ts *httptest.Server, path string, roots *x509.CertPool) (net.Conn, error) {
	d := websocket.Dialer{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: hostName},
		Subprotocols:    []string{WebSocketSubprotocol},
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ts.Listener.Addr().String())
		},
	}
	ws, resp, err := d.DialContext(ctx, "wss://"+hostName+path, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if ws.Subprotocol() != WebSocketSubprotocol {
		ws.Close()
		return nil, fmt.Errorf("subprotocol %q", ws.Subprotocol())
	}
	return wsconn.New(ws), nil
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	tb.Cleanup(cancel)
	return ctx
}

func newSession(tb testing.TB, c *goamqp.Conn) *goamqp.Session {
	tb.Helper()
	s, err := c.NewSession(ctxT(tb), nil)
	if err != nil {
		tb.Fatalf("session: %v", err)
	}
	return s
}

// cbsClient puts tokens on $cbs the way azeventhubs does: a sender and a
// receiver whose target is the reply-to address.
type cbsClient struct {
	snd     *goamqp.Sender
	rcv     *goamqp.Receiver
	replyTo string
}

var replySeq atomic.Int64

func newCBS(tb testing.TB, c *goamqp.Conn) *cbsClient {
	tb.Helper()
	s := newSession(tb, c)
	snd, err := s.NewSender(ctxT(tb), "$cbs", nil)
	if err != nil {
		tb.Fatalf("attach $cbs sender: %v", err)
	}
	reply := fmt.Sprintf("cbs-reply-%d", replySeq.Add(1))
	rcv, err := s.NewReceiver(ctxT(tb), "$cbs", &goamqp.ReceiverOptions{TargetAddress: reply})
	if err != nil {
		tb.Fatalf("attach $cbs receiver: %v", err)
	}
	return &cbsClient{snd: snd, rcv: rcv, replyTo: reply}
}

// rpcReply is a management reply as the SDKs read it.
type rpcReply struct {
	status      int32
	description string
	msg         *goamqp.Message
}

// call sends a request and waits for its reply, checking the correlation.
func call(tb testing.TB, snd *goamqp.Sender, rcv *goamqp.Receiver, replyTo string, req *goamqp.Message) rpcReply {
	tb.Helper()
	if req.Properties == nil {
		req.Properties = &goamqp.MessageProperties{}
	}
	if req.Properties.MessageID == nil {
		req.Properties.MessageID = fmt.Sprintf("req-%d", replySeq.Add(1))
	}
	if replyTo != "" {
		req.Properties.ReplyTo = &replyTo
	}
	ctx := ctxT(tb)
	if err := snd.Send(ctx, req, nil); err != nil {
		tb.Fatalf("send request: %v", err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		tb.Fatalf("receive reply: %v", err)
	}
	_ = rcv.AcceptMessage(ctx, m)
	if m.Properties == nil || fmt.Sprintf("%T %v", m.Properties.CorrelationID, m.Properties.CorrelationID) != fmt.Sprintf("%T %v", req.Properties.MessageID, req.Properties.MessageID) {
		tb.Fatalf("reply correlation-id %#v, want the request's message-id %#v of the same type", m.Properties, req.Properties.MessageID)
	}
	status, ok := m.ApplicationProperties["status-code"].(int32)
	if !ok {
		tb.Fatalf("status-code %#v is not an AMQP int", m.ApplicationProperties["status-code"])
	}
	desc, _ := m.ApplicationProperties["status-description"].(string)
	return rpcReply{status: status, description: desc, msg: m}
}

func putTokenRequest(audience, token string) *goamqp.Message {
	return &goamqp.Message{
		Value: token,
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      "servicebus.windows.net:sastoken",
			"name":      audience,
		},
	}
}

// put puts a token and returns the reply.
func (c *cbsClient) put(tb testing.TB, audience, token string) rpcReply {
	tb.Helper()
	return call(tb, c.snd, c.rcv, c.replyTo, putTokenRequest(audience, token))
}

// mustPut puts a token that must be accepted.
func (c *cbsClient) mustPut(tb testing.TB, audience, token string) {
	tb.Helper()
	if r := c.put(tb, audience, token); r.status != 200 {
		tb.Fatalf("put-token %s: %d %s", audience, r.status, r.description)
	}
}

// attachErr returns the error an attach of a receiver from source ended
// with: the refusal arrives as a detach right after the attach.
func attachErr(tb testing.TB, s *goamqp.Session, source string, opts *goamqp.ReceiverOptions) *goamqp.Error {
	tb.Helper()
	r, err := s.NewReceiver(ctxT(tb), source, opts)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		_, err = r.Receive(ctx, nil)
	}
	return linkError(tb, err)
}

// senderAttachErr is attachErr for a sender to target.
func senderAttachErr(tb testing.TB, s *goamqp.Session, target string) *goamqp.Error {
	tb.Helper()
	snd, err := s.NewSender(ctxT(tb), target, nil)
	if err == nil {
		err = snd.Send(ctxT(tb), &goamqp.Message{Data: [][]byte{[]byte("x")}}, nil)
	}
	return linkError(tb, err)
}

func linkError(tb testing.TB, err error) *goamqp.Error {
	tb.Helper()
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return le.RemoteErr
	}
	var ae *goamqp.Error
	if errors.As(err, &ae) {
		return ae
	}
	tb.Fatalf("got %v, want a link refused with an AMQP error", err)
	return nil
}

func wantCondition(tb testing.TB, what string, e *goamqp.Error, cond goamqp.ErrCond, descContains string) {
	tb.Helper()
	if e == nil || e.Condition != cond || !strings.Contains(e.Description, descContains) {
		tb.Errorf("%s: got %v, want %s mentioning %q", what, e, cond, descContains)
	}
}
