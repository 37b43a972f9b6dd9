// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testKey = "dGVzdGtleS1mb3ItdGhlLWNsaQ=="

// request is what the fake hub received.
type request struct {
	method, uri, ifMatch string
	header               http.Header
	body                 string
}

// hub is a fake hub over TLS whose CA certificate is written to caFile.
type hub struct {
	srv    *httptest.Server
	caFile string
	cs     string

	mu   sync.Mutex
	reqs []request
}

func newHub(t *testing.T, handler http.HandlerFunc) *hub {
	t.Helper()
	h := &hub{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, request{r.Method, r.RequestURI, r.Header.Get("If-Match"), r.Header.Clone(), string(b)})
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		handler(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	h.cs = "HostName=" + strings.TrimPrefix(h.srv.URL, "https://") + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey
	return h
}

func (h *hub) requests() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]request(nil), h.reqs...)
}

// result is the outcome of one command line.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs args with env as the whole environment and stdin as input.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		getenv: func(k string) string { return env[k] },
		stdin:  strings.NewReader(stdin),
		stdout: &out, stderr: &errOut,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := c.run(ctx, args)
	return result{code, out.String(), errOut.String()}
}

// envFor points the environment at h.
func envFor(h *hub) map[string]string {
	return map[string]string{"IOTHUB_CONNECTION_STRING": h.cs, "IOTHUB_CA_FILE": h.caFile}
}

func checkOutputJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("stdout %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("stdout mismatch (-want +got):\n%s", diff)
	}
}

const createdDevice = `{"deviceId":"dev1","etag":"MQ==","status":"enabled",
  "authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`

func TestCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		stdin      string
		answer     string // hub response body (status 200)
		wantMethod string
		wantURI    string
		wantIf     string
		wantBody   string // "" means none
		wantOut    string // JSON; "" means no output
	}{
		{
			name:       "device create prints the connection string",
			args:       []string{"device", "create", "dev1"},
			answer:     createdDevice,
			wantMethod: "PUT", wantURI: "/devices/dev1?api-version=2021-04-12",
			wantBody: `{"deviceId":"dev1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
			wantOut:  `{"connectionString":"HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey=cGs=","device":` + createdDevice + `}`,
		},
		{
			name:       "device create edge disabled with flags after the id",
			args:       []string{"device", "create", "edge1", "--edge", "--status", "disabled", "--primary-key", "cGs=", "--secondary-key", "c2s=", "--device-host", "HOST"},
			answer:     `{"deviceId":"edge1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}},"capabilities":{"iotEdge":true}}`,
			wantMethod: "PUT", wantURI: "/devices/edge1?api-version=2021-04-12",
			wantBody: `{"deviceId":"edge1","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}},"capabilities":{"iotEdge":true}}`,
			wantOut:  `{"connectionString":"HostName=HOST;DeviceId=edge1;SharedAccessKey=cGs=","device":{"deviceId":"edge1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}},"capabilities":{"iotEdge":true}}}`,
		},
		{
			name:       "device create x509",
			args:       []string{"device", "create", "--x509-primary", "AB12", "dev1"},
			answer:     `{"deviceId":"dev1","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB12","secondaryThumbprint":null}}}`,
			wantMethod: "PUT", wantURI: "/devices/dev1?api-version=2021-04-12",
			wantBody: `{"deviceId":"dev1","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB12"}}}`,
			wantOut:  `{"connectionString":"HostName=127.0.0.1;DeviceId=dev1;x509=true","device":{"deviceId":"dev1","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB12"}}}}`,
		},
		{
			name:       "device show",
			args:       []string{"device", "show", "dev 1"},
			answer:     createdDevice,
			wantMethod: "GET", wantURI: "/devices/dev%201?api-version=2021-04-12",
			wantOut: createdDevice,
		},
		{
			name:       "device list",
			args:       []string{"device", "list", "--top", "5"},
			answer:     "[" + createdDevice + "]",
			wantMethod: "GET", wantURI: "/devices?api-version=2021-04-12&top=5",
			wantOut: "[" + createdDevice + "]",
		},
		{
			name:       "device delete",
			args:       []string{"device", "delete", "dev1", "--etag", "MQ=="},
			wantMethod: "DELETE", wantURI: "/devices/dev1?api-version=2021-04-12", wantIf: `"MQ=="`,
		},
		{
			name:       "twin show module",
			args:       []string{"twin", "show", "dev1", "--module", "m1"},
			answer:     `{"deviceId":"dev1","moduleId":"m1","etag":"AAAAAAAAAAE=","version":2}`,
			wantMethod: "GET", wantURI: "/twins/dev1/modules/m1?api-version=2021-04-12",
			wantOut: `{"deviceId":"dev1","moduleId":"m1","etag":"AAAAAAAAAAE=","version":2}`,
		},
		{
			name:       "twin update inline",
			args:       []string{"twin", "update", "dev1", "--etag", "AAAAAAAAAAE=", "--patch", `{"tags":{"site":"B7"},"properties":{"desired":{"fan":null}}}`},
			answer:     `{"deviceId":"dev1","etag":"AAAAAAAAAAI=","tags":{"site":"B7"}}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1?api-version=2021-04-12", wantIf: `"AAAAAAAAAAE="`,
			wantBody: `{"tags":{"site":"B7"},"properties":{"desired":{"fan":null}}}`,
			wantOut:  `{"deviceId":"dev1","etag":"AAAAAAAAAAI=","tags":{"site":"B7"}}`,
		},
		{
			name:       "twin update from stdin",
			args:       []string{"twin", "update", "dev1", "--patch", "-"},
			stdin:      `{"properties":{"desired":{"fan":2}}}`,
			answer:     `{"deviceId":"dev1"}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1?api-version=2021-04-12", wantIf: `"*"`,
			wantBody: `{"properties":{"desired":{"fan":2}}}`,
			wantOut:  `{"deviceId":"dev1"}`,
		},
		{
			name:       "method invoke",
			args:       []string{"method", "invoke", "dev1", "--name", "setFan", "--payload", `{"speed":3}`, "--timeout", "10s", "--connect-timeout", "5s"},
			answer:     `{"status":200,"payload":{"applied":true}}`,
			wantMethod: "POST", wantURI: "/twins/dev1/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"setFan","payload":{"speed":3},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":5}`,
			wantOut:  `{"status":200,"payload":{"applied":true}}`,
		},
		{
			name:       "method invoke module without payload",
			args:       []string{"method", "invoke", "--module", "m1", "--name", "ping", "dev1"},
			answer:     `{"status":200,"payload":null}`,
			wantMethod: "POST", wantURI: "/twins/dev1/modules/m1/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"ping","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
			wantOut:  `{"status":200,"payload":null}`,
		},
		{
			name:       "device connection-string show",
			args:       []string{"device", "connection-string", "show", "dev1"},
			answer:     createdDevice,
			wantMethod: "GET", wantURI: "/devices/dev1?api-version=2021-04-12",
			wantOut: `{"connectionString":"HostName=127.0.0.1;DeviceId=dev1;SharedAccessKey=cGs="}`,
		},
		{
			name:       "device connection-string show secondary with a device host",
			args:       []string{"device", "connection-string", "show", "dev1", "--key-type", "secondary", "--device-host", "localhost:18883"},
			answer:     createdDevice,
			wantMethod: "GET", wantURI: "/devices/dev1?api-version=2021-04-12",
			wantOut: `{"connectionString":"HostName=localhost:18883;DeviceId=dev1;SharedAccessKey=c2s="}`,
		},
		{
			name:       "twin update desired and tags",
			args:       []string{"twin", "update", "dev1", "--desired", `{"fan":2}`, "--tags", `{"site":"B7"}`},
			answer:     `{"deviceId":"dev1"}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1?api-version=2021-04-12", wantIf: `"*"`,
			wantBody: `{"tags":{"site":"B7"},"properties":{"desired":{"fan":2}}}`,
			wantOut:  `{"deviceId":"dev1"}`,
		},
		{
			name:       "twin update clears the tags",
			args:       []string{"twin", "update", "dev1", "--tags", "null"},
			answer:     `{"deviceId":"dev1"}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1?api-version=2021-04-12", wantIf: `"*"`,
			wantBody: `{"tags":null}`,
			wantOut:  `{"deviceId":"dev1"}`,
		},
		{
			name:       "twin update patch as shown by twin show",
			args:       []string{"twin", "update", "dev1", "--patch", `{"deviceId":"dev1","etag":"x","version":3,"properties":{"desired":null}}`},
			answer:     `{"deviceId":"dev1"}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1?api-version=2021-04-12", wantIf: `"*"`,
			wantBody: `{"properties":{"desired":null}}`,
			wantOut:  `{"deviceId":"dev1"}`,
		},
		{
			name:       "module create",
			args:       []string{"module", "create", "dev1", "m1"},
			answer:     `{"deviceId":"dev1","moduleId":"m1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
			wantMethod: "PUT", wantURI: "/devices/dev1/modules/m1?api-version=2021-04-12",
			wantBody: `{"deviceId":"dev1","moduleId":"m1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
			wantOut:  `{"connectionString":"HostName=127.0.0.1;DeviceId=dev1;ModuleId=m1;SharedAccessKey=cGs=","module":{"deviceId":"dev1","moduleId":"m1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}}`,
		},
		{
			name:       "module show",
			args:       []string{"module", "show", "dev1", "m 1"},
			answer:     `{"deviceId":"dev1","moduleId":"m 1"}`,
			wantMethod: "GET", wantURI: "/devices/dev1/modules/m%201?api-version=2021-04-12",
			wantOut: `{"deviceId":"dev1","moduleId":"m 1"}`,
		},
		{
			name:       "module list",
			args:       []string{"module", "list", "dev1"},
			answer:     `[]`,
			wantMethod: "GET", wantURI: "/devices/dev1/modules?api-version=2021-04-12",
			wantOut: `[]`,
		},
		{
			name:       "module delete",
			args:       []string{"module", "delete", "dev1", "m1", "--etag", "MQ=="},
			wantMethod: "DELETE", wantURI: "/devices/dev1/modules/m1?api-version=2021-04-12", wantIf: `"MQ=="`,
		},
		{
			name:       "module connection-string show",
			args:       []string{"module", "connection-string", "show", "dev1", "m1"},
			answer:     `{"deviceId":"dev1","moduleId":"m1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
			wantMethod: "GET", wantURI: "/devices/dev1/modules/m1?api-version=2021-04-12",
			wantOut: `{"connectionString":"HostName=127.0.0.1;DeviceId=dev1;ModuleId=m1;SharedAccessKey=cGs="}`,
		},
		{
			name:       "module twin show",
			args:       []string{"module", "twin", "show", "dev1", "m1"},
			answer:     `{"deviceId":"dev1","moduleId":"m1"}`,
			wantMethod: "GET", wantURI: "/twins/dev1/modules/m1?api-version=2021-04-12",
			wantOut: `{"deviceId":"dev1","moduleId":"m1"}`,
		},
		{
			name:       "module twin update",
			args:       []string{"module", "twin", "update", "dev1", "m1", "--desired", `{"threshold":30}`, "--etag", "AAAAAAAAAAE="},
			answer:     `{"deviceId":"dev1","moduleId":"m1"}`,
			wantMethod: "PATCH", wantURI: "/twins/dev1/modules/m1?api-version=2021-04-12", wantIf: `"AAAAAAAAAAE="`,
			wantBody: `{"properties":{"desired":{"threshold":30}}}`,
			wantOut:  `{"deviceId":"dev1","moduleId":"m1"}`,
		},
		{
			name:       "module method invoke",
			args:       []string{"module", "method", "invoke", "dev1", "m1", "--name", "reset", "--payload", `{}`},
			answer:     `{"status":201,"payload":"done"}`,
			wantMethod: "POST", wantURI: "/twins/dev1/modules/m1/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"reset","payload":{},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
			wantOut:  `{"status":201,"payload":"done"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.answer == "" {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				io.WriteString(w, tt.answer)
			})
			host := strings.TrimPrefix(h.srv.URL, "https://")
			args := slices.Clone(tt.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "HOST", host)
			}
			res := runCLI(t, envFor(h), tt.stdin, args...)
			if res.code != exitOK {
				t.Fatalf("exit %d, stderr %q; want 0", res.code, res.stderr)
			}
			reqs := h.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != tt.wantMethod || r.uri != tt.wantURI || r.ifMatch != tt.wantIf {
				t.Errorf("got %s %s If-Match %q, want %s %s %q", r.method, r.uri, r.ifMatch, tt.wantMethod, tt.wantURI, tt.wantIf)
			}
			if !strings.HasPrefix(r.header.Get("Authorization"), "SharedAccessSignature sr=127.0.0.1&") {
				t.Errorf("Authorization = %q, want a SAS token for 127.0.0.1", r.header.Get("Authorization"))
			}
			if tt.wantBody == "" {
				if r.body != "" {
					t.Errorf("got body %q, want none", r.body)
				}
			} else {
				checkOutputJSON(t, r.body, tt.wantBody)
			}
			if tt.wantOut == "" {
				if res.stdout != "" {
					t.Errorf("got stdout %q, want none", res.stdout)
				}
				return
			}
			checkOutputJSON(t, res.stdout, strings.ReplaceAll(tt.wantOut, "HOST", host))
		})
	}
}

func TestTwinUpdatePatchFromFile(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	file := filepath.Join(t.TempDir(), "patch.json")
	if err := os.WriteFile(file, []byte(`{"tags":{"a":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, envFor(h), "", "twin", "update", "dev1", "--patch", "@"+file)
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, h.requests()[0].body, `{"tags":{"a":1}}`)
}

// TestQueryPages checks that query follows the continuation across pages
// and prints one array.
func TestQueryPages(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("x-ms-continuation") {
		case "":
			w.Header().Set("x-ms-continuation", "p2")
			io.WriteString(w, `[{"deviceId":"a"}]`)
		case "p2":
			w.Header().Set("x-ms-continuation", "p3")
			io.WriteString(w, `[{"deviceId":"b"}]`)
		default:
			io.WriteString(w, `[{"deviceId":"c"}]`)
		}
	})
	res := runCLI(t, envFor(h), "", "query", "--page-size", "1", "SELECT deviceId FROM devices")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	checkOutputJSON(t, res.stdout, `[{"deviceId":"a"},{"deviceId":"b"},{"deviceId":"c"}]`)
	reqs := h.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	for _, r := range reqs {
		checkOutputJSON(t, r.body, `{"query":"SELECT deviceId FROM devices"}`)
		if got := r.header.Get("x-ms-max-item-count"); got != "1" {
			t.Errorf("x-ms-max-item-count = %q, want 1", got)
		}
	}
}

// TestFlagsOverrideEnvironment passes the connection settings as flags,
// before and after the command words, with an environment that would fail.
func TestFlagsOverrideEnvironment(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, createdDevice) })
	bad := map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=nowhere.invalid;SharedAccessKeyName=x;SharedAccessKey=" + testKey}
	tests := []struct {
		name string
		args []string
	}{
		{"before", []string{"--connection-string", h.cs, "--ca-file", h.caFile, "device", "show", "dev1"}},
		{"after", []string{"device", "show", "dev1", "--connection-string=" + h.cs, "--ca-file", h.caFile}},
		{"mixed", []string{"--ca-file", h.caFile, "device", "show", "--connection-string", h.cs, "dev1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, bad, "", tt.args...)
			if res.code != exitOK {
				t.Fatalf("exit %d, stderr %q; want 0", res.code, res.stderr)
			}
			checkOutputJSON(t, res.stdout, createdDevice)
		})
	}
}

// TestRunUsesProcessEnvironment goes through run, the entry point main
// uses, with the settings in the real environment.
func TestRunUsesProcessEnvironment(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"connectedDeviceCount":0}`) })
	t.Setenv("IOTHUB_CONNECTION_STRING", h.cs)
	t.Setenv("IOTHUB_CA_FILE", h.caFile)
	var out, errOut bytes.Buffer
	if code := run([]string{"device", "show", "dev1"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("got %d requests, want 1", n)
	}
}

func TestErrors(t *testing.T) {
	h := newHub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("iothub-errorcode", "DeviceNotFound")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:x"}`)
	})
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envFor(h)
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"hub error", env, []string{"device", "show", "dev9"}, exitError, "404 DeviceNotFound (404001): Device dev9 is not registered"},
		{"no connection string", map[string]string{}, []string{"device", "show", "dev1"}, exitUsage, "no connection string"},
		{"unknown command", env, []string{"jobs", "list"}, exitUsage, `unknown command "jobs"`},
		{"unknown subcommand", env, []string{"device", "frobnicate"}, exitUsage, `unknown command "frobnicate" for "iothub device"`},
		{"missing subcommand", env, []string{"twin"}, exitUsage, "twin needs a subcommand"},
		{"missing id", env, []string{"device", "show"}, exitUsage, "device show takes one argument, the device id, got 0 arguments"},
		{"unknown flag", env, []string{"device", "show", "dev1", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"bad patch", env, []string{"twin", "update", "dev1", "--patch", "{nope"}, exitUsage, "--patch is not valid JSON"},
		{"no patch", env, []string{"twin", "update", "dev1"}, exitUsage, "twin update needs --desired, --tags or --patch"},
		{"no method name", env, []string{"method", "invoke", "dev1"}, exitUsage, "needs --name"},
		{"bad status", env, []string{"device", "create", "dev1", "--status", "maybe"}, exitUsage, "--status must be"},
		{"ca and keys", env, []string{"device", "create", "dev1", "--ca", "--primary-key", "cGs="}, exitUsage, "--ca excludes"},
		{"query without text", env, []string{"query"}, exitUsage, "query takes one argument"},
		{"missing CA file", map[string]string{"IOTHUB_CONNECTION_STRING": h.cs, "IOTHUB_CA_FILE": "/nonexistent/ca.pem"}, []string{"device", "show", "dev1"}, exitError, "reading CA file"},
		{"CA file without PEM", map[string]string{"IOTHUB_CONNECTION_STRING": h.cs, "IOTHUB_CA_FILE": notPEM}, []string{"device", "show", "dev1"}, exitError, "holds no PEM certificate"},
		{"patch without the properties wrapper", env, []string{"twin", "update", "dev1", "--patch", `{"desired":{"fan":2}}`}, exitUsage, `--patch has "desired" outside the "properties" wrapper`},
		{"patch with reported", env, []string{"twin", "update", "dev1", "--patch", `{"properties":{"reported":{"fan":2}}}`}, exitUsage, "reported properties are written by the device"},
		{"patch with an unknown member", env, []string{"twin", "update", "dev1", "--patch", `{"tag":{"a":1}}`}, exitUsage, `unknown member "tag"`},
		{"patch not an object", env, []string{"twin", "update", "dev1", "--patch", `[1]`}, exitUsage, "--patch must be a JSON object"},
		{"desired not an object", env, []string{"twin", "update", "dev1", "--desired", `42`}, exitUsage, "--desired must be a JSON object (or null to clear it), got 42"},
		{"patch and desired", env, []string{"twin", "update", "dev1", "--patch", `{}`, "--desired", `{}`}, exitUsage, "not both"},
		{"module create without module id", env, []string{"module", "create", "dev1"}, exitUsage, "module create takes 2 arguments, the device id and the module id, got 1 argument"},
		{"module twin without subcommand", env, []string{"module", "twin"}, exitUsage, "module twin needs a subcommand"},
		{"module method without name", env, []string{"module", "method", "invoke", "dev1", "m1"}, exitUsage, "module method invoke needs --name"},
		{"bad key type", env, []string{"device", "connection-string", "show", "dev1", "--key-type", "tertiary"}, exitUsage, "--key-type must be primary or secondary"},
		{"bad connection string", map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=h;DeviceId=d;SharedAccessKey=" + testKey}, []string{"device", "show", "dev1"}, exitError, "not a shared access policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, tt.env, "", tt.args...)
			if res.code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", res.code, tt.wantCode, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", res.stderr, tt.wantStderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want none on failure", res.stdout)
			}
		})
	}
}
