// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestRequestsMatchSDKs checks that each operation sends what the official
// SDKs send for it. Sources (Node package azure-iothub 1.16.6, dist/):
// registry.js (create/update/get/list/delete, modules, twins, bulk,
// statistics, _normalizeAuthentication, _ensureQuoted, _executeQueryFunc),
// device_method.js (invokeOn/invokeOnModule), version.js (api-version);
// Python azure-iot-hub iothub_registry_manager.py for what Node lacks
// (create_device_with_x509, create_device_with_certificate_authority,
// get_devices with top, replace_twin, get_service_statistics).
func TestRequestsMatchSDKs(t *testing.T) {
	const av = "?api-version=2021-04-12"
	devicePatch := &Twin{
		Tags:       TwinCollection(`{"site":{"floor":"3"}}`),
		Properties: TwinProperties{Desired: TwinCollection(`{"fanSpeed":4,"schedule":null}`)},
	}
	tests := []struct {
		name      string
		call      func(ctx context.Context, c *Client) error
		method    string
		uri       string
		ifMatch   string // "" means the header must be absent
		body      string // "" means no body
		extraHdrs map[string]string
	}{
		{
			// Node Registry.create: no If-Match; no authentication becomes
			// sas with empty keys so that the hub generates them.
			name: "CreateDevice hub-generated keys",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "dev1"})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av,
			body: `{"deviceId":"dev1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			// encodeURIComponent(deviceId) in Node: space, #, +, /, $ and
			// UTF-8 are escaped with upper-case hex; !*'() are not.
			name: "CreateDevice escapes the id",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "dev #1+/$é!*'()"})
				return err
			},
			method: "PUT", uri: "/devices/dev%20%231%2B%2F%24%C3%A9!*'()" + av,
			body: `{"deviceId":"dev #1+/$é!*'()","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			name: "CreateDevice given keys, disabled",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "dev1", Status: StatusDisabled, Authentication: SASAuth("cGs=", "c2s=")})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av,
			body: `{"deviceId":"dev1","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
		},
		{
			// Python create_device_with_x509; Node infers selfSigned from
			// the thumbprints when type is missing.
			name: "CreateDevice X.509 thumbprints without type",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "dev1", Authentication: &AuthenticationMechanism{
					X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: "AB12", SecondaryThumbprint: "CD34"},
				}})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av,
			body: `{"deviceId":"dev1","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB12","secondaryThumbprint":"CD34"}}}`,
		},
		{
			// Python create_device_with_certificate_authority.
			name: "CreateDevice certificate authority",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "dev1", Authentication: CAAuth()})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av,
			body: `{"deviceId":"dev1","authentication":{"type":"certificateAuthority"}}`,
		},
		{
			name: "CreateDevice IoT Edge",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, &Device{DeviceID: "edge1", Capabilities: &DeviceCapabilities{IoTEdge: true}})
				return err
			},
			method: "PUT", uri: "/devices/edge1" + av,
			body: `{"deviceId":"edge1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}},"capabilities":{"iotEdge":true}}`,
		},
		{
			// Node Registry.update sends If-Match "*", quoted.
			name: "UpdateDevice unconditional",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateDevice(ctx, &Device{DeviceID: "dev1", Status: StatusDisabled, Authentication: SASAuth("cGs=", "c2s=")})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av, ifMatch: `"*"`,
			body: `{"deviceId":"dev1","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
		},
		{
			name: "UpdateDevice with etag",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateDevice(ctx, &Device{DeviceID: "dev1", ETag: "MQ==", Authentication: SASAuth("cGs=", "c2s=")})
				return err
			},
			method: "PUT", uri: "/devices/dev1" + av, ifMatch: `"MQ=="`,
			body: `{"deviceId":"dev1","etag":"MQ==","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
		},
		{
			name: "GetDevice",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetDevice(ctx, "dev1")
				return err
			},
			method: "GET", uri: "/devices/dev1" + av,
		},
		{
			name: "DeleteDevice unconditional",
			call: func(ctx context.Context, c *Client) error {
				return c.DeleteDevice(ctx, "dev1", "")
			},
			method: "DELETE", uri: "/devices/dev1" + av, ifMatch: `"*"`,
		},
		{
			name: "DeleteDevice with etag",
			call: func(ctx context.Context, c *Client) error {
				return c.DeleteDevice(ctx, "dev1", "MQ==")
			},
			method: "DELETE", uri: "/devices/dev1" + av, ifMatch: `"MQ=="`,
		},
		{
			name: "DeleteDevice already quoted etag",
			call: func(ctx context.Context, c *Client) error {
				return c.DeleteDevice(ctx, "dev1", `"MQ=="`)
			},
			method: "DELETE", uri: "/devices/dev1" + av, ifMatch: `"MQ=="`,
		},
		{
			// Node Registry.list sends no top.
			name: "ListDevices",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListDevices(ctx, 0)
				return err
			},
			method: "GET", uri: "/devices" + av,
		},
		{
			// Python get_devices(max_number_of_devices) sends top.
			name: "ListDevices top",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListDevices(ctx, 10)
				return err
			},
			method: "GET", uri: "/devices" + av + "&top=10",
		},
		{
			// Node Registry.addModule: no If-Match, normalised auth.
			name: "CreateModule",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateModule(ctx, &Module{DeviceID: "dev1", ModuleID: "mod$1", ManagedBy: "IotEdge"})
				return err
			},
			method: "PUT", uri: "/devices/dev1/modules/mod%241" + av,
			body: `{"moduleId":"mod$1","deviceId":"dev1","managedBy":"IotEdge","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			// Node Registry.updateModule: quoted etag.
			name: "UpdateModule with etag",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateModule(ctx, &Module{DeviceID: "dev1", ModuleID: "mod1", ETag: "Mg==", Authentication: SASAuth("cGs=", "c2s=")})
				return err
			},
			method: "PUT", uri: "/devices/dev1/modules/mod1" + av, ifMatch: `"Mg=="`,
			body: `{"moduleId":"mod1","deviceId":"dev1","etag":"Mg==","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}}`,
		},
		{
			name: "GetModule",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetModule(ctx, "dev1", "mod1")
				return err
			},
			method: "GET", uri: "/devices/dev1/modules/mod1" + av,
		},
		{
			// Node Registry.removeModule with ids: If-Match "*".
			name: "DeleteModule",
			call: func(ctx context.Context, c *Client) error {
				return c.DeleteModule(ctx, "dev1", "mod1", "")
			},
			method: "DELETE", uri: "/devices/dev1/modules/mod1" + av, ifMatch: `"*"`,
		},
		{
			name: "ListModules",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListModules(ctx, "dev1")
				return err
			},
			method: "GET", uri: "/devices/dev1/modules" + av,
		},
		{
			name: "GetRegistryStatistics",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetRegistryStatistics(ctx)
				return err
			},
			method: "GET", uri: "/statistics/devices" + av,
		},
		{
			name: "GetServiceStatistics",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetServiceStatistics(ctx)
				return err
			},
			method: "GET", uri: "/statistics/service" + av,
		},
		{
			// Node Registry.addDevices/removeDevices: POST /devices with
			// id and importMode; create entries get normalised auth.
			name: "BulkRegistryOperation",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.BulkRegistryOperation(ctx, []ExportImportDevice{
					{ID: "a", ImportMode: ImportCreate},
					{ID: "b", ImportMode: ImportDeleteIfMatchETag, ETag: "MQ=="},
				})
				return err
			},
			method: "POST", uri: "/devices" + av,
			body: `[{"id":"a","importMode":"create","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}},
				{"id":"b","eTag":"MQ==","importMode":"deleteIfMatchETag"}]`,
		},
		{
			name: "GetTwin",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetTwin(ctx, "dev 1")
				return err
			},
			method: "GET", uri: "/twins/dev%201" + av,
		},
		{
			// Node Registry.updateTwin: PATCH with the quoted etag.
			name: "UpdateTwin with etag",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "dev1", devicePatch, "AAAAAAAAAAE=")
				return err
			},
			method: "PATCH", uri: "/twins/dev1" + av, ifMatch: `"AAAAAAAAAAE="`,
			body: `{"tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null}}}`,
		},
		{
			// A fresh Node Twin has etag "*", so updateTwin sends "*".
			name: "UpdateTwin unconditional",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "dev1", devicePatch, "")
				return err
			},
			method: "PATCH", uri: "/twins/dev1" + av, ifMatch: `"*"`,
			body: `{"tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null}}}`,
		},
		{
			// Python replace_twin (Node has no PUT /twins).
			name: "ReplaceTwin",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ReplaceTwin(ctx, "dev1", &Twin{Tags: TwinCollection(`{"a":1}`)}, "AAAAAAAAAAI=")
				return err
			},
			method: "PUT", uri: "/twins/dev1" + av, ifMatch: `"AAAAAAAAAAI="`,
			body: `{"tags":{"a":1}}`,
		},
		{
			name: "GetModuleTwin",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetModuleTwin(ctx, "dev1", "mod1")
				return err
			},
			method: "GET", uri: "/twins/dev1/modules/mod1" + av,
		},
		{
			name: "UpdateModuleTwin",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateModuleTwin(ctx, "dev1", "mod1", devicePatch, "")
				return err
			},
			method: "PATCH", uri: "/twins/dev1/modules/mod1" + av, ifMatch: `"*"`,
			body: `{"tags":{"site":{"floor":"3"}},"properties":{"desired":{"fanSpeed":4,"schedule":null}}}`,
		},
		{
			name: "ReplaceModuleTwin",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ReplaceModuleTwin(ctx, "dev1", "mod1", &Twin{Properties: TwinProperties{Desired: TwinCollection(`{"x":true}`)}}, "")
				return err
			},
			method: "PUT", uri: "/twins/dev1/modules/mod1" + av, ifMatch: `"*"`,
			body: `{"properties":{"desired":{"x":true}}}`,
		},
		{
			// Node DeviceMethod defaults: payload null, response timeout
			// 30, connect timeout 0.
			name: "InvokeMethod defaults",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeMethod(ctx, "dev1", MethodCall{Name: "reboot"})
				return err
			},
			method: "POST", uri: "/twins/dev1/methods" + av,
			body: `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			name: "InvokeMethod payload and timeouts",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeMethod(ctx, "dev1", MethodCall{
					Name: "setFan", Payload: map[string]int{"speed": 3},
					ResponseTimeout: 20 * time.Second, ConnectTimeout: 1500 * time.Millisecond,
				})
				return err
			},
			method: "POST", uri: "/twins/dev1/methods" + av,
			body: `{"methodName":"setFan","payload":{"speed":3},"responseTimeoutInSeconds":20,"connectTimeoutInSeconds":2}`,
		},
		{
			name: "InvokeModuleMethod raw payload",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeModuleMethod(ctx, "dev1", "mod1", MethodCall{Name: "ping", Payload: json.RawMessage(`"hi"`)})
				return err
			},
			method: "POST", uri: "/twins/dev1/modules/mod1/methods" + av,
			body: `{"methodName":"ping","payload":"hi","responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			// Node Registry._executeQueryFunc: x-ms-max-item-count only
			// when a page size is set, no continuation on the first page.
			name: "Query first page",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Query("SELECT * FROM devices", 50).NextPage(ctx)
				return err
			},
			method: "POST", uri: "/devices/query" + av,
			body:      `{"query":"SELECT * FROM devices"}`,
			extraHdrs: map[string]string{"x-ms-max-item-count": "50", "x-ms-continuation": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				body := "{}"
				if r.Method == http.MethodGet && (r.URL.Path == "/devices" || r.URL.Path == "/devices/dev1/modules") ||
					r.URL.Path == "/devices/query" {
					body = "[]"
				}
				reply(w, http.StatusOK, body)
			})
			c, _ := hub.client(t)
			if err := tt.call(testContext(t), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := hub.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.RequestURI != tt.uri {
				t.Errorf("got %s %s, want %s %s", r.Method, r.RequestURI, tt.method, tt.uri)
			}
			checkCommonHeaders(t, r, hub.host())
			if got, ok := r.Header["If-Match"]; tt.ifMatch == "" && ok {
				t.Errorf("If-Match = %q, want none", got)
			} else if tt.ifMatch != "" && r.Header.Get("If-Match") != tt.ifMatch {
				t.Errorf("If-Match = %q, want %q", r.Header.Get("If-Match"), tt.ifMatch)
			}
			for k, want := range tt.extraHdrs {
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tt.body == "" {
				if len(r.Body) != 0 {
					t.Errorf("got body %q, want none", r.Body)
				}
				return
			}
			checkJSON(t, "request body", r.Body, tt.body)
		})
	}
}

// TestCreateDeviceDoesNotModifyArgument guards the copy made before the
// authentication defaults are filled in.
func TestCreateDeviceDoesNotModifyArgument(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t)
	d := &Device{DeviceID: "dev1"}
	if _, err := c.CreateDevice(testContext(t), d); err != nil {
		t.Fatal(err)
	}
	if d.Authentication != nil {
		t.Errorf("got Authentication %+v on the caller's device, want nil", d.Authentication)
	}
}

// TestTokenReusedAcrossCalls checks that the cached token is sent again
// rather than re-signed on every call.
func TestTokenReusedAcrossCalls(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t)
	ctx := testContext(t)
	for range 2 {
		if _, err := c.GetDevice(ctx, "dev1"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := hub.requests()
	if a, b := reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"); a != b {
		t.Errorf("got different tokens %q and %q, want the cached one reused", a, b)
	}
	if a, b := reqs[0].Header.Get("Request-Id"), reqs[1].Header.Get("Request-Id"); a == b {
		t.Errorf("got the same Request-Id %q twice, want a fresh one per request", a)
	}
}

func TestClientSideValidation(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{}`) })
	c, _ := hub.client(t)
	ctx := testContext(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"CreateDevice nil", func() error { _, err := c.CreateDevice(ctx, nil); return err }},
		{"CreateDevice no id", func() error { _, err := c.CreateDevice(ctx, &Device{}); return err }},
		{"GetDevice no id", func() error { _, err := c.GetDevice(ctx, ""); return err }},
		{"DeleteModule no module", func() error { return c.DeleteModule(ctx, "d", "", "") }},
		{"UpdateTwin nil patch", func() error { _, err := c.UpdateTwin(ctx, "d", nil, ""); return err }},
		{"InvokeMethod no name", func() error { _, err := c.InvokeMethod(ctx, "d", MethodCall{}); return err }},
		{"InvokeMethod negative", func() error {
			_, err := c.InvokeMethod(ctx, "d", MethodCall{Name: "m", ConnectTimeout: -time.Second})
			return err
		}},
		{"Bulk empty", func() error { _, err := c.BulkRegistryOperation(ctx, nil); return err }},
		{"Bulk no mode", func() error {
			_, err := c.BulkRegistryOperation(ctx, []ExportImportDevice{{ID: "a"}})
			return err
		}},
		{"Query no text", func() error { _, err := c.Query("", 0).NextPage(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
	if n := len(hub.requests()); n != 0 {
		t.Errorf("got %d requests, want none for invalid arguments", n)
	}
}
