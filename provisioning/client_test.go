// SPDX-License-Identifier: MIT

package provisioning

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
)

// fakeService answers the HTTPS device API from a script of answers, and
// records the requests.
type fakeService struct {
	mu      sync.Mutex
	script  []func(w http.ResponseWriter)
	reqs    []*http.Request
	bodies  []string
	srv     *httptest.Server
	rootCAs *x509.CertPool
}

func newFakeService(t *testing.T, script ...func(w http.ResponseWriter)) *fakeService {
	f := &fakeService{script: script}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.bodies = append(f.bodies, string(b))
		var answer func(http.ResponseWriter)
		if len(f.script) > 0 {
			answer, f.script = f.script[0], f.script[1:]
		}
		f.mu.Unlock()
		if answer == nil {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusTeapot)
			return
		}
		answer(w)
	}))
	t.Cleanup(f.srv.Close)
	f.rootCAs = x509.NewCertPool()
	f.rootCAs.AddCert(f.srv.Certificate())
	return f
}

func (f *fakeService) host() string { return strings.TrimPrefix(f.srv.URL, "https://") }

func reply(status int, retryAfter, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const assigned = `{"operationId":"4.a.b","status":"assigned","registrationState":{"registrationId":"dev-1","createdDateTimeUtc":"2024-05-02T09:00:00.1234567Z",
	"assignedHub":"hub.example","deviceId":"dev-1","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2024-05-02T09:00:01.5Z",
	"etag":"ImUi","payload":{"p":1},"symmetricKey":{"enrollmentGroupId":"g1"}}}`

// TestHTTPSRequestsAndRetries: the requests are the ones Node's HTTP
// transport sends, throttling and server errors are retried, and the
// answer's fields reach the result.
func TestHTTPSRequestsAndRetries(t *testing.T) {
	f := newFakeService(t,
		reply(429, "", `{"errorCode":429001,"message":"throttled"}`),
		reply(202, "0", `{"operationId":"4.a.b","status":"assigning"}`),
		reply(503, "", `{"errorCode":503001,"message":"busy"}`),
		reply(202, "", `{"operationId":"4.a.b","status":"assigning","registrationState":{"registrationId":"dev-1","status":"assigning"}}`),
		reply(200, "", assigned),
	)
	key := sas.GenerateKey()
	c, err := NewFromSymmetricKey(f.host(), "0ne00000E11", "dev-1", key, WithTransport(HTTPS), WithRootCAs(f.rootCAs),
		WithPollingInterval(5*time.Millisecond), WithPayload(map[string]int{"a": 1}), WithProductInfo(";test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := res.RegistrationState
	if res.OperationID != "4.a.b" || res.Status != StatusAssigned || st.DeviceID != "dev-1" || st.AssignedHub != "hub.example" ||
		st.Substatus != "initialAssignment" || st.ETag != "ImUi" || string(st.Payload) != `{"p":1}` || st.EnrollmentGroupID != "g1" ||
		st.CreatedDateTime != time.Date(2024, 5, 2, 9, 0, 0, 123456700, time.UTC) || st.LastUpdatedDateTime.IsZero() {
		t.Fatalf("result %+v", res)
	}
	if cs, _ := res.ConnectionString(); cs != "HostName=hub.example;DeviceId=dev-1;SharedAccessKey="+key {
		t.Errorf("connection string %q", cs)
	}
	want := []string{"PUT /0ne00000E11/registrations/dev-1/register", "PUT /0ne00000E11/registrations/dev-1/register",
		"GET /0ne00000E11/registrations/dev-1/operations/4.a.b", "GET /0ne00000E11/registrations/dev-1/operations/4.a.b",
		"GET /0ne00000E11/registrations/dev-1/operations/4.a.b"}
	if len(f.reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(f.reqs), len(want))
	}
	for i, r := range f.reqs {
		if got := r.Method + " " + r.URL.Path; got != want[i] || r.URL.Query().Get("api-version") != APIVersion {
			t.Errorf("request %d: %s?%s, want %s?api-version=%s", i, got, r.URL.RawQuery, want[i], APIVersion)
		}
		tok, err := sas.ParseToken(r.Header.Get("Authorization"))
		if err != nil || tok.Resource != "0ne00000E11/registrations/dev-1" || tok.KeyName != "registration" || !tok.Verify(key) {
			t.Errorf("request %d: token %+v, %v", i, tok, err)
		}
		if !strings.HasPrefix(r.Header.Get("User-Agent"), "iothub-go-provisioning/") || !strings.HasSuffix(r.Header.Get("User-Agent"), ";test") ||
			r.Header.Get("Content-Type") != "application/json; charset=utf-8" || r.Header.Get("Accept") != "application/json" {
			t.Errorf("request %d headers: %v", i, r.Header)
		}
	}
	if f.bodies[0] != `{"registrationId":"dev-1","payload":{"a":1}}` {
		t.Errorf("register body %s", f.bodies[0])
	}
}

// TestHTTPSErrors: an error answer below 429 ends the registration with
// the service's code and message; statuses the client does not know are
// errors too.
func TestHTTPSErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter)
		check  func(error) bool
	}{
		{"unauthorized", reply(401, "", `{"errorCode":401002,"trackingId":"t1","message":"Unauthorized","timestampUtc":"2024-05-02T09:00:00Z"}`),
			func(err error) bool {
				var e *Error
				return errors.Is(err, ErrUnauthorized) && errors.As(err, &e) && e.Code == 401002 && e.TrackingID == "t1" && e.Message == "Unauthorized" && e.Op == "Register"
			}},
		{"bad request", reply(400, "", `{"errorCode":400004,"message":"bad"}`), func(err error) bool { return errors.Is(err, ErrBadRequest) }},
		{"not found, body not JSON", reply(404, "", `nope`), func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{"unknown status", reply(200, "", `{"operationId":"x","status":"pondering"}`), func(err error) bool { return err != nil && strings.Contains(err.Error(), "pondering") }},
		{"not an operation", reply(200, "", `[1]`), func(err error) bool { return err != nil && !errors.Is(err, ErrRegistrationFailed) }},
		{"assigning without an operation id", reply(202, "", `{"status":"assigning"}`), func(err error) bool { return err != nil }},
		{"disabled", reply(200, "", `{"operationId":"x","status":"disabled","registrationState":{"status":"disabled"}}`),
			func(err error) bool { return errors.Is(err, ErrRegistrationFailed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeService(t, tc.answer)
			c, _ := NewFromSymmetricKey(f.host(), "s", "dev-1", sas.GenerateKey(), WithTransport(HTTPS), WithRootCAs(f.rootCAs))
			_, err := c.Register(context.Background())
			if !tc.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestRegisterHonoursContext: a context that ends while the client waits
// to poll ends Register with the context's error.
func TestRegisterHonoursContext(t *testing.T) {
	f := newFakeService(t, reply(202, "3600", `{"operationId":"4.a.b","status":"assigning"}`))
	c, _ := NewFromSymmetricKey(f.host(), "s", "dev-1", sas.GenerateKey(), WithTransport(HTTPS), WithRootCAs(f.rootCAs))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			f.mu.Lock()
			n := len(f.reqs)
			f.mu.Unlock()
			if n == 1 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := c.Register(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestParseResponseTopic reads the MQTT answer topics the service sends.
func TestParseResponseTopic(t *testing.T) {
	for _, tc := range []struct {
		topic  string
		ok     bool
		status int
		rid    string
		retry  time.Duration
	}{
		{"$dps/registrations/res/202/?$rid=1&retry-after=3", true, 202, "1", 3 * time.Second},
		{"$dps/registrations/res/200/?$rid=abc", true, 200, "abc", 0},
		{"$dps/registrations/res/401/?retry-after=x&$rid=r", true, 401, "r", 0},
		{"$dps/registrations/res/200/?%24rid=r", true, 200, "r", 0},
		{"$dps/registrations/res/200/", false, 0, "", 0},
		{"$dps/registrations/res/abc/?$rid=1", false, 0, "", 0},
		{"$dps/registrations/res/200/?retry-after=1", false, 0, "", 0},
		{"$iothub/twin/res/200/?$rid=1", false, 0, "", 0},
	} {
		a, rid, ok := parseResponseTopic(tc.topic)
		if ok != tc.ok || (ok && (a.status != tc.status || rid != tc.rid || a.retryAfter != tc.retry)) {
			t.Errorf("%s: got %+v %q %v", tc.topic, a, rid, ok)
		}
	}
}

// TestConstructors refuses what cannot work.
func TestConstructors(t *testing.T) {
	key := sas.GenerateKey()
	for name, f := range map[string]func() (*Client, error){
		"no host":          func() (*Client, error) { return NewFromSymmetricKey("", "s", "r", key) },
		"no scope":         func() (*Client, error) { return NewFromSymmetricKey("h", "", "r", key) },
		"no registration":  func() (*Client, error) { return NewFromSymmetricKey("h", "s", "", key) },
		"no key":           func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", "") },
		"key not base64":   func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", "***") },
		"unknown option":   func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", key, WithTransport(Transport(9))) },
		"bad poll":         func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", key, WithPollingInterval(0)) },
		"bad payload":      func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", key, WithPayload(func() {})) },
		"missing CA file":  func() (*Client, error) { return NewFromSymmetricKey("h", "s", "r", key, WithCAFile("/nonexistent")) },
		"empty X.509 cert": func() (*Client, error) { return NewFromX509Certificate("h", "s", "r", tls.Certificate{}) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if b, _ := json.Marshal(map[string]string{"t": MQTTWebSockets.String()}); !strings.Contains(string(b), "WebSockets") {
		t.Error(string(b))
	}
}
