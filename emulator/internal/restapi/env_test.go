// SPDX-License-Identifier: MIT

package restapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// testHost is the hub name tokens are signed for.
const testHost = "localhost"

// apiVersion is what the Node and C# service SDKs send.
const testAPIVersion = "2021-04-12"

// ownerKey is the iothubowner primary key of every test hub.
var ownerKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// testNow is the fixed hub clock: timestamps in answers are predictable.
var testNow = time.Date(2024, 5, 2, 9, 20, 11, 0, time.UTC)

// env is one hub behind the REST handler, served over real TLS.
type env struct {
	t      *testing.T
	hub    *hub.Hub
	srv    *httptest.Server
	client *http.Client
}

// newEnv starts a hub over a temporary store and serves it over TLS on
// 127.0.0.1; everything is closed when the test ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h, err := hub.New(db, hub.Config{
		HostName: testHost,
		Policies: hub.DefaultPolicies(ownerKey),
		Clock:    clock.FromFunc(func() time.Time { return testNow }),
	})
	if err != nil {
		db.Close()
		t.Fatalf("new hub: %v", err)
	}
	srv := httptest.NewUnstartedServer(New(Options{Hub: h}))
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
	return &env{t: t, hub: h, srv: srv, client: client}
}

// in returns e reporting to t: subtests use it so that a helper's Fatalf
// ends the subtest, not its parent.
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// token signs a service token for a policy with its primary key, valid for
// an hour after the hub's clock.
func (e *env) token(policy string) string {
	e.t.Helper()
	p, ok := e.hub.Policy(policy)
	if !ok {
		e.t.Fatalf("no policy %q", policy)
	}
	return e.tokenWith(testHost, policy, p.PrimaryKey, testNow.Add(time.Hour))
}

// tokenWith signs a token with explicit parts.
func (e *env) tokenWith(resource, keyName, key string, expiry time.Time) string {
	e.t.Helper()
	tok, err := sas.NewToken(resource, keyName, key, expiry)
	if err != nil {
		e.t.Fatalf("sign token: %v", err)
	}
	return tok
}

// request describes one call. path may carry its own query; the
// api-version is appended unless noVersion is set.
type request struct {
	method    string
	path      string
	auth      string // Authorization header; "" sends none
	body      any    // string and []byte are sent as is, anything else as JSON
	ifMatch   string
	header    map[string]string
	noVersion bool
}

// response is what came back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(r request) response {
	e.t.Helper()
	url := e.srv.URL + r.path
	if !r.noVersion {
		sep := "?"
		if strings.Contains(r.path, "?") {
			sep = "&"
		}
		url += sep + "api-version=" + testAPIVersion
	}
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode body: %v", err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(r.method, url, body)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.ifMatch != "" {
		req.Header.Set("If-Match", r.ifMatch)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read %s %s: %v", r.method, r.path, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// owner calls as iothubowner.
func (e *env) owner(method, path string, body any) response {
	e.t.Helper()
	return e.do(request{method: method, path: path, auth: e.token(hub.OwnerPolicy), body: body})
}

// ownerIf calls as iothubowner with an If-Match header.
func (e *env) ownerIf(method, path, ifMatch string, body any) response {
	e.t.Helper()
	return e.do(request{method: method, path: path, auth: e.token(hub.OwnerPolicy), body: body, ifMatch: ifMatch})
}

// wantStatus fails the test unless r has the status.
func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got status %d, want %d; body %s", what, r.status, status, r.body)
	}
}

// decode unmarshals the body into v.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// errorBody is the envelope of both error forms.
type errorBody struct {
	Message          string
	ExceptionMessage string
}

// checkFormA checks a form A error: status, the iothub-errorcode header,
// a JSON content type and Message "ErrorCode:<code>;...".
func checkFormA(t *testing.T, what string, r response, status int, code string) errorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if got := r.header.Get("iothub-errorcode"); got != code {
		t.Errorf("%s: got iothub-errorcode %q, want %q", what, got, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
		t.Errorf("%s: got Content-Type %q, want application/json", what, ct)
	}
	b := decode[errorBody](t, r)
	if prefix := "ErrorCode:" + code + ";"; !strings.HasPrefix(b.Message, prefix) {
		t.Errorf("%s: got Message %q, want prefix %q", what, b.Message, prefix)
	}
	if !strings.HasPrefix(b.ExceptionMessage, "Tracking ID:") {
		t.Errorf("%s: got ExceptionMessage %q, want a tracking id", what, b.ExceptionMessage)
	}
	return b
}

// formB is the object escaped inside a form B Message.
type formB struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc"`
}

// checkFormB checks a form B error and returns the inner object.
func checkFormB(t *testing.T, what string, r response, status, code int) formB {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got status %d, want %d; body %s", what, r.status, status, r.body)
	}
	b := decode[errorBody](t, r)
	if b.ExceptionMessage != "" {
		t.Errorf("%s: got ExceptionMessage %q, want empty", what, b.ExceptionMessage)
	}
	var inner formB
	if err := json.Unmarshal([]byte(b.Message), &inner); err != nil {
		t.Fatalf("%s: Message %q is not a JSON object: %v", what, b.Message, err)
	}
	if inner.ErrorCode != code {
		t.Errorf("%s: got errorCode %d, want %d", what, inner.ErrorCode, code)
	}
	if inner.TrackingID == "" || inner.TimestampUTC == "" {
		t.Errorf("%s: got %+v, want trackingId and timestampUtc", what, inner)
	}
	return inner
}

// createDevice registers id as Node does (empty keys) and returns it.
func (e *env) createDevice(id string) hub.Device {
	e.t.Helper()
	r := e.owner("PUT", "/devices/"+id, map[string]any{
		"deviceId":       id,
		"authentication": nodeEmptyKeys(),
	})
	wantStatus(e.t, "create "+id, r, http.StatusOK)
	return decode[hub.Device](e.t, r)
}

// createModule registers a module with generated keys.
func (e *env) createModule(id, mid string) hub.Module {
	e.t.Helper()
	r := e.owner("PUT", "/devices/"+id+"/modules/"+mid, map[string]any{
		"deviceId": id, "moduleId": mid, "authentication": nodeEmptyKeys(),
	})
	wantStatus(e.t, "create module "+id+"/"+mid, r, http.StatusOK)
	return decode[hub.Module](e.t, r)
}

// nodeEmptyKeys is the authentication block Node's Registry sends when the
// caller gave none.
func nodeEmptyKeys() map[string]any {
	return map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": "", "secondaryKey": ""}}
}

// fakeSession is a connected device as the hub sees it: it answers direct
// methods through onMethod.
type fakeSession struct {
	mu       sync.Mutex
	conn     *hub.Conn
	onMethod func(c *hub.Conn, rid, name string, payload []byte)
	closed   bool
}

func (s *fakeSession) SendMethod(rid, name string, payload []byte) error {
	s.mu.Lock()
	c, f := s.conn, s.onMethod
	s.mu.Unlock()
	if f != nil {
		go f(c, rid, name, payload)
	}
	return nil
}

func (s *fakeSession) SendDesired(int64, []byte) error { return nil }

func (s *fakeSession) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// connect registers a live session for id, subscribed to methods, and
// disconnects it when the test ends.
func (e *env) connect(id hub.Identity, onMethod func(c *hub.Conn, rid, name string, payload []byte)) *hub.Conn {
	e.t.Helper()
	s := &fakeSession{onMethod: onMethod}
	c := e.hub.Connect(id, s, hub.ConnectInfo{AuthMethod: "sas"})
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	c.SubscribeMethods()
	e.t.Cleanup(c.Disconnect)
	return c
}
