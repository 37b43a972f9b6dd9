// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/iothubemulator/iothub/internal/sas"
)

// testKey is the policy key of the fake hub's iothubowner policy.
const testKey = "dGVzdGtleS1mb3ItdGhlLXNlcnZpY2UtY2xpZW50LXRlc3Rz"

// recorded is one request as the fake hub received it.
type recorded struct {
	Method     string
	RequestURI string // raw path and query, exactly as sent
	Header     http.Header
	Body       []byte
}

// fakeHub is a TLS server on 127.0.0.1 standing in for the hub. It records
// every request and answers with handler, which gets the 0-based index of
// the request.
type fakeHub struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []recorded
	handler func(w http.ResponseWriter, r *http.Request, n int)
}

func newFakeHub(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int)) *fakeHub {
	t.Helper()
	h := &fakeHub{handler: handler}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		n := len(h.reqs)
		h.reqs = append(h.reqs, recorded{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body})
		h.mu.Unlock()
		h.handler(w, r, n)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// host returns "127.0.0.1:port".
func (h *fakeHub) host() string {
	u, _ := url.Parse(h.srv.URL)
	return u.Host
}

func (h *fakeHub) connectionString() string {
	return "HostName=" + h.host() + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey
}

func (h *fakeHub) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(h.srv.Certificate())
	return p
}

func (h *fakeHub) requests() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

// client returns a client for h that trusts its certificate, records the
// waits between attempts instead of sleeping, and makes one attempt unless
// opts say otherwise.
func (h *fakeHub) client(t *testing.T, opts ...Option) (*Client, *sleepRecorder) {
	t.Helper()
	opts = append([]Option{WithRootCAs(h.pool()), WithoutRetries()}, opts...)
	c, err := NewFromConnectionString(h.connectionString(), opts...)
	if err != nil {
		t.Fatalf("NewFromConnectionString: %v", err)
	}
	rec := &sleepRecorder{}
	c.sleep = rec.sleep
	return c, rec
}

// sleepRecorder replaces the wait between attempts.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// reply writes a JSON response.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// replyFormA writes an error in the hub's "ErrorCode:Name;message" form.
func replyFormA(w http.ResponseWriter, status int, name, msg string) {
	b, _ := json.Marshal(map[string]string{
		"Message":          "ErrorCode:" + name + ";" + msg,
		"ExceptionMessage": "Tracking ID:0123456789abcdef0123456789abcdef-G:4-TimeStamp:05/02/2024 09:20:11",
	})
	w.Header().Set("iothub-errorcode", name)
	reply(w, status, string(b))
}

// replyFormB writes an error in the hub's escaped-JSON form used by direct
// methods.
func replyFormB(w http.ResponseWriter, status, code int, msg, info string) {
	inner, _ := json.Marshal(map[string]any{
		"errorCode":    code,
		"trackingId":   "fedcba9876543210-G:7-TimeStamp:05/02/2024 09:21:00",
		"message":      msg,
		"info":         json.RawMessage(info),
		"timestampUtc": "2024-05-02T09:21:00.1234567Z",
	})
	b, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
	reply(w, status, string(b))
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkCommonHeaders checks the headers every SDK request carries
// (azure-iothub dist/common-http/rest_api_client.js executeApiCall): a SAS
// token for the hub host without port signed by the iothubowner key, a
// UUID Request-Id and the User-Agent; Content-Type only with a body.
func checkCommonHeaders(t *testing.T, r recorded, host string) {
	t.Helper()
	tok, err := sas.ParseToken(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatalf("Authorization %q: %v", r.Header.Get("Authorization"), err)
	}
	if want := strings.Split(host, ":")[0]; tok.Resource != want {
		t.Errorf("token sr = %q, want %q (host without port)", tok.Resource, want)
	}
	if tok.KeyName != "iothubowner" {
		t.Errorf("token skn = %q, want iothubowner", tok.KeyName)
	}
	if !tok.Verify(testKey) {
		t.Errorf("token signature does not verify with the policy key")
	}
	if id := r.Header.Get("Request-Id"); !uuidV4.MatchString(id) {
		t.Errorf("Request-Id = %q, want a version 4 UUID", id)
	}
	if ua := r.Header.Get("User-Agent"); ua != DefaultUserAgent {
		t.Errorf("User-Agent = %q, want %q", ua, DefaultUserAgent)
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case len(r.Body) > 0 && ct != "application/json; charset=utf-8":
		t.Errorf("Content-Type = %q, want application/json; charset=utf-8", ct)
	case len(r.Body) == 0 && ct != "":
		t.Errorf("Content-Type = %q on a request without body", ct)
	}
}

// checkJSON compares two JSON documents semantically.
func checkJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: got invalid JSON %q: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad test JSON %q: %v", what, want, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s\ngot %s", what, diff, got)
	}
}

// testContext returns a context that ends with the test, bounded in time.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
