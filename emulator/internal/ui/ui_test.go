// SPDX-License-Identifier: MIT

package ui

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

var ownerKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func newHandler(t *testing.T) http.Handler {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h, err := hub.New(db, hub.Config{HostName: "myhub.local", Policies: hub.DefaultPolicies(ownerKey), Clock: clock.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return New(Options{Hub: h, ServiceHost: "myhub.local:8443", DeviceHost: "myhub.local:18883"})
}

func getConfig(t *testing.T, h http.Handler, r *http.Request) (Config, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", r.URL, w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("config Cache-Control %q, want no-store", cc)
	}
	var c Config
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatalf("config body %q: %v", w.Body, err)
	}
	return c, w.Body.String()
}

// TestConfigOnlyForLoopback: the owner connection string goes to a client
// on this machine and to no one else, whatever the request claims.
func TestConfigOnlyForLoopback(t *testing.T) {
	h := newHandler(t)
	wantCS := "HostName=myhub.local:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=" + ownerKey
	tests := []struct {
		name    string
		remote  string
		host    string
		headers map[string]string
		local   bool
	}{
		{name: "ipv4 loopback", remote: "127.0.0.1:50000", host: "localhost:8443", local: true},
		{name: "other loopback address", remote: "127.0.0.2:50000", host: "127.0.0.1:8443", local: true},
		{name: "ipv6 loopback", remote: "[::1]:50000", host: "[::1]:8443", local: true},
		{name: "ipv4-mapped loopback", remote: "[::ffff:127.0.0.1]:50000", host: "localhost", local: true},
		{name: "hub host name", remote: "127.0.0.1:50000", host: "MyHub.local:8443", local: true},
		{name: "same-origin fetch", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"Sec-Fetch-Site": "same-origin"}, local: true},

		{name: "LAN client", remote: "192.168.1.20:50000", host: "localhost:8443"},
		{name: "public client", remote: "203.0.113.7:50000", host: "myhub.local:8443"},
		{name: "ipv6 client", remote: "[2001:db8::1]:50000", host: "myhub.local"},
		{name: "unspecified address", remote: "0.0.0.0:50000", host: "localhost"},
		{name: "docker bridge", remote: "172.17.0.1:50000", host: "localhost:443"},
		{name: "link-local", remote: "[fe80::1%eth0]:50000", host: "localhost"},
		{name: "unparsable remote", remote: "localhost:50000", host: "localhost"},
		{name: "empty remote", remote: "", host: "localhost"},
		{name: "remote claims via Host", remote: "198.51.100.1:50000", host: "127.0.0.1"},
		{name: "loopback proxy, Forwarded", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"Forwarded": "for=203.0.113.7"}},
		{name: "loopback proxy, X-Forwarded-For", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"X-Forwarded-For": "203.0.113.7"}},
		{name: "loopback proxy, X-Real-IP", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"X-Real-IP": "203.0.113.7"}},
		{name: "rebound DNS name", remote: "127.0.0.1:50000", host: "evil.example:8443"},
		{name: "cross-site fetch", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "same-site fetch", remote: "127.0.0.1:50000", host: "localhost", headers: map[string]string{"Sec-Fetch-Site": "same-site"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://x/ui/config.json", nil)
			r.RemoteAddr = tc.remote
			r.Host = tc.host
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			c, body := getConfig(t, h, r)
			if c.Local != tc.local {
				t.Errorf("local = %v, want %v", c.Local, tc.local)
			}
			if c.HostName != "myhub.local" || c.ServiceHost != "myhub.local:8443" || c.DeviceHost != "myhub.local:18883" {
				t.Errorf("hosts %q %q %q", c.HostName, c.ServiceHost, c.DeviceHost)
			}
			if tc.local {
				if c.ConnectionString != wantCS {
					t.Errorf("connection string %q, want %q", c.ConnectionString, wantCS)
				}
				return
			}
			// Nothing sensitive: no key of any policy, no connection string.
			if c.ConnectionString != "" || strings.Contains(body, "SharedAccessKey") {
				t.Errorf("non-local client got %s", body)
			}
			for _, p := range hub.DefaultPolicies(ownerKey) {
				if strings.Contains(body, p.PrimaryKey) || strings.Contains(body, p.SecondaryKey) {
					t.Errorf("non-local client got the %s key: %s", p.Name, body)
				}
			}
		})
	}
}

// TestConfigOverRealSockets serves the dashboard on 127.0.0.1 over TLS: a
// loopback client is offered the string; the same handler asked through a
// proxy hop on loopback is not.
func TestConfigOverRealSockets(t *testing.T) {
	h := newHandler(t)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // httptest's own certificate
	get := func(hdr map[string]string) Config {
		req, _ := http.NewRequest("GET", srv.URL+"/ui/config.json", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var c Config
		if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := get(nil); !c.Local || c.ConnectionString == "" {
		t.Errorf("loopback client: %+v, want the connection string", c)
	}
	if c := get(map[string]string{"X-Forwarded-For": "203.0.113.7"}); c.Local || c.ConnectionString != "" {
		t.Errorf("proxied client: %+v, want nothing", c)
	}
}

func TestAssets(t *testing.T) {
	h := newHandler(t)
	tests := []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8", `<script type="module" src="js/app.js">`},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8", "<title>"},
		{"GET", "/ui/js/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"GET", "/ui/js/hub.js", 200, "text/javascript; charset=utf-8", "crypto.subtle"},
		{"GET", "/ui/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/ui/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"HEAD", "/ui/js/app.js", 200, "text/javascript; charset=utf-8", ""},
		{"GET", "/ui", 301, "", ""},
		{"GET", "/ui/js", 404, "", ""},
		{"GET", "/ui/js/", 404, "", ""},
		{"GET", "/ui/../routes.go", 404, "", ""},
		{"GET", "/ui/js/../../ui.go", 404, "", ""},
		{"GET", "/ui/nope.js", 404, "", ""},
		{"POST", "/ui/", 405, "", ""},
		{"DELETE", "/ui/config.json", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "https://localhost"+tc.path, nil)
			r.URL.Path = tc.path // keep dot segments as a raw client may send them
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == 301 && w.Header().Get("Location") != "/ui/" {
				t.Errorf("redirect to %q, want /ui/", w.Header().Get("Location"))
			}
			if tc.ctype != "" && w.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tc.ctype)
			}
			b, _ := io.ReadAll(w.Body)
			if !strings.Contains(string(b), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if tc.method == "HEAD" && len(b) != 0 {
				t.Errorf("HEAD answered a body of %d bytes", len(b))
			}
			if tc.status == 200 {
				if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
				if w.Header().Get("X-Content-Type-Options") != "nosniff" {
					t.Error("no X-Content-Type-Options: nosniff")
				}
			}
		})
	}
}
