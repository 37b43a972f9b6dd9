// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
)

func TestNewFromConnectionStringErrors(t *testing.T) {
	tests := []struct {
		name string
		cs   string
		opts []Option
	}{
		{"empty", "", nil},
		{"device string", "HostName=h;DeviceId=d;SharedAccessKey=" + testKey, nil},
		{"module string", "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + testKey, nil},
		{"no key", "HostName=h;SharedAccessKeyName=iothubowner", nil},
		{"bad key", "HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=%%%", nil},
		{"bad token", "HostName=h;SharedAccessKeyName=p;SharedAccessSignature=nope", nil},
		{"CAs and client", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + testKey,
			[]Option{WithRootCAs(x509.NewCertPool()), WithHTTPClient(&http.Client{})}},
		{"zero lifetime", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + testKey, []Option{WithTokenLifetime(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := NewFromConnectionString(tt.cs, tt.opts...); err == nil {
				t.Errorf("got client for %q, want an error", c.HostName())
			}
		})
	}
}

func TestNewFromSASTokenErrors(t *testing.T) {
	tok, err := sas.NewToken("h", "p", testKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, host, token string }{
		{"empty host", "", tok},
		{"url as host", "https://h", tok},
		{"not a token", "h", "Bearer x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewFromSASToken(tt.host, tt.token); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
}

// TestReadyMadeTokens checks both ways of giving the client a token: it is
// sent exactly as given.
func TestReadyMadeTokens(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	tok, err := sas.NewToken("127.0.0.1", "service", testKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	fromCS, err := NewFromConnectionString("HostName="+hub.host()+";SharedAccessKeyName=service;SharedAccessSignature="+tok,
		WithRootCAs(hub.pool()))
	if err != nil {
		t.Fatal(err)
	}
	fromTok, err := NewFromSASToken(hub.host(), tok, WithHTTPClient(hub.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{fromCS, fromTok} {
		if _, err := c.GetServiceStatistics(testContext(t)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range hub.requests() {
		if got := r.Header.Get("Authorization"); got != tok {
			t.Errorf("request %d Authorization = %q, want %q", i, got, tok)
		}
	}
}

func TestPolicyKeyRenewal(t *testing.T) {
	p := &policyKey{resource: "hub.example", keyName: "iothubowner", key: testKey, lifetime: time.Hour}
	t0 := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	first, err := p.authorization(t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		at      time.Duration
		renewed bool
	}{
		{"same instant", 0, false},
		{"40 minutes later", 40 * time.Minute, false},
		{"quarter of lifetime left", 45 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.authorization(t0.Add(tt.at))
			if err != nil {
				t.Fatal(err)
			}
			if renewed := got != first; renewed != tt.renewed {
				t.Errorf("renewed = %v, want %v", renewed, tt.renewed)
			}
			parsed, err := sas.ParseToken(got)
			if err != nil {
				t.Fatal(err)
			}
			if !parsed.Verify(testKey) || parsed.Resource != "hub.example" || parsed.KeyName != "iothubowner" {
				t.Errorf("token %q does not verify for hub.example/iothubowner", got)
			}
		})
	}
}

func TestWithTokenLifetime(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t, WithTokenLifetime(10*time.Minute))
	now := time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	if _, err := c.GetDevice(testContext(t), "d"); err != nil {
		t.Fatal(err)
	}
	tok, err := sas.ParseToken(hub.requests()[0].Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(10 * time.Minute); !tok.Expiry.Equal(want) {
		t.Errorf("token expiry %v, want %v", tok.Expiry, want)
	}
}

func TestWithUserAgentAndLogger(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _ := hub.client(t, WithUserAgent("my-tool/2.0"), WithLogger(logger))
	if _, err := c.GetDevice(testContext(t), "dev1"); err != nil {
		t.Fatal(err)
	}
	r := hub.requests()[0]
	if got := r.Header.Get("User-Agent"); got != "my-tool/2.0" {
		t.Errorf("User-Agent = %q, want my-tool/2.0", got)
	}
	out := logs.String()
	if !strings.Contains(out, "op=GetDevice") || !strings.Contains(out, r.Header.Get("Request-Id")) {
		t.Errorf("log %q lacks the operation or the Request-Id", out)
	}
	if strings.Contains(out, "SharedAccessSignature") || strings.Contains(out, "sig=") {
		t.Errorf("log %q contains the token", out)
	}
}

func TestHostNameKeepsPort(t *testing.T) {
	c, err := NewFromConnectionString("HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.HostName(); got != "localhost:8443" {
		t.Errorf("HostName = %q, want localhost:8443", got)
	}
}

func TestIfMatch(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `"*"`},
		{"*", `"*"`},
		{`"*"`, `"*"`},
		{"MQ==", `"MQ=="`},
		{`"AAAAAAAAAAE="`, `"AAAAAAAAAAE="`},
		{`W/"x"`, `W/"x"`},
	}
	for _, tt := range tests {
		if got := ifMatch(tt.in).Get("If-Match"); got != tt.want {
			t.Errorf("ifMatch(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
