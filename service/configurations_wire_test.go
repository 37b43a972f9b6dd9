// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestConfigurationAndDigitalTwinRequests checks what each configuration
// and digital twin call sends against what the official SDKs send: Node
// azure-iothub 1.16.6 registry.js (addConfiguration, updateConfiguration
// with _ensureQuoted If-Match, removeConfiguration,
// applyConfigurationContentOnDevice), dist/pl/operations
// (configurationOperations.js getConfigurations with top, testQueries;
// digitalTwin.js with the command timeouts as query parameters), and the
// C# DigitalTwinsClient (the payload as the body).
func TestConfigurationAndDigitalTwinRequests(t *testing.T) {
	const av = "?api-version=2021-04-12"
	cfg := &Configuration{
		ID: "fw-update", Priority: 10, TargetCondition: "tags.env='prod'", Labels: map[string]string{"v": "1"},
		Content: ConfigurationContent{DeviceContent: map[string]any{"properties.desired.fw": map[string]any{"version": "2"}}},
		Metrics: ConfigurationMetrics{Queries: map[string]string{"ok": "SELECT deviceId FROM devices"}},
	}
	cfgBody := `{"id":"fw-update","schemaVersion":"1.0","labels":{"v":"1"},"content":{"deviceContent":{"properties.desired.fw":{"version":"2"}}},
		"targetCondition":"tags.env='prod'","priority":10,"metrics":{"queries":{"ok":"SELECT deviceId FROM devices"}}}`
	withETag := *cfg
	withETag.ETag = "MQ=="
	tests := []struct {
		name    string
		call    func(ctx context.Context, c *Client) error
		method  string
		uri     string
		ifMatch string
		body    string
	}{
		{"CreateConfiguration", func(ctx context.Context, c *Client) error { _, err := c.CreateConfiguration(ctx, cfg); return err },
			"PUT", "/configurations/fw-update" + av, "", cfgBody},
		{"UpdateConfiguration with etag", func(ctx context.Context, c *Client) error {
			_, err := c.UpdateConfiguration(ctx, &withETag)
			return err
		},
			"PUT", "/configurations/fw-update" + av, `"MQ=="`, `{"id":"fw-update","schemaVersion":"1.0","labels":{"v":"1"},
			"content":{"deviceContent":{"properties.desired.fw":{"version":"2"}}},"targetCondition":"tags.env='prod'","priority":10,
			"metrics":{"queries":{"ok":"SELECT deviceId FROM devices"}},"etag":"MQ=="}`},
		{"UpdateConfiguration forced", func(ctx context.Context, c *Client) error { _, err := c.UpdateConfiguration(ctx, cfg); return err },
			"PUT", "/configurations/fw-update" + av, `"*"`, cfgBody},
		{"GetConfiguration", func(ctx context.Context, c *Client) error { _, err := c.GetConfiguration(ctx, "fw-update"); return err },
			"GET", "/configurations/fw-update" + av, "", ""},
		{"ListConfigurations", func(ctx context.Context, c *Client) error { _, err := c.ListConfigurations(ctx, 0); return err },
			"GET", "/configurations" + av, "", ""},
		{"ListConfigurations top", func(ctx context.Context, c *Client) error { _, err := c.ListConfigurations(ctx, 5); return err },
			"GET", "/configurations" + av + "&top=5", "", ""},
		{"DeleteConfiguration", func(ctx context.Context, c *Client) error { return c.DeleteConfiguration(ctx, "fw-update", "") },
			"DELETE", "/configurations/fw-update" + av, `"*"`, ""},
		{"DeleteConfiguration with etag", func(ctx context.Context, c *Client) error { return c.DeleteConfiguration(ctx, "fw-update", "Mg==") },
			"DELETE", "/configurations/fw-update" + av, `"Mg=="`, ""},
		{"TestConfigurationQueries", func(ctx context.Context, c *Client) error {
			_, err := c.TestConfigurationQueries(ctx, "tags.x=1", nil)
			return err
		}, "POST", "/configurations/testQueries" + av, "", `{"targetCondition":"tags.x=1","customMetricQueries":{}}`},
		{"ApplyConfigurationContent", func(ctx context.Context, c *Client) error {
			return c.ApplyConfigurationContent(ctx, "edge 1", &ConfigurationContent{ModulesContent: map[string]map[string]any{
				"$edgeAgent": {"properties.desired": map[string]any{"modules": map[string]any{}}}}})
		}, "POST", "/devices/edge%201/applyConfigurationContent" + av, "", `{"modulesContent":{"$edgeAgent":{"properties.desired":{"modules":{}}}}}`},
		{"GetDigitalTwin", func(ctx context.Context, c *Client) error { _, err := c.GetDigitalTwin(ctx, "d/1"); return err },
			"GET", "/digitaltwins/d%2F1" + av, "", ""},
		{"UpdateDigitalTwin", func(ctx context.Context, c *Client) error {
			_, err := c.UpdateDigitalTwin(ctx, "d1", []DigitalTwinOperation{
				DigitalTwinAdd("/thermostat1", DigitalTwinComponent(map[string]any{"targetTemperature": 21})),
				DigitalTwinReplace("/fan", 2), DigitalTwinRemove("/old"),
			}, "AAAAAAAAAAE=")
			return err
		}, "PATCH", "/digitaltwins/d1" + av, `"AAAAAAAAAAE="`, `[{"op":"add","path":"/thermostat1","value":{"targetTemperature":21,"$metadata":{}}},
			{"op":"replace","path":"/fan","value":2},{"op":"remove","path":"/old"}]`},
		{"UpdateDigitalTwin without etag", func(ctx context.Context, c *Client) error {
			_, err := c.UpdateDigitalTwin(ctx, "d1", nil, "")
			return err
		}, "PATCH", "/digitaltwins/d1" + av, "", `[]`},
		{"InvokeCommand", func(ctx context.Context, c *Client) error {
			_, err := c.InvokeCommand(ctx, "d1", Command{Name: "reboot", Payload: 5})
			return err
		}, "POST", "/digitaltwins/d1/commands/reboot" + av + "&responseTimeoutInSeconds=30", "", `5`},
		{"InvokeCommand component", func(ctx context.Context, c *Client) error {
			_, err := c.InvokeCommand(ctx, "d1", Command{Component: "thermostat1", Name: "getMaxMinReport",
				Payload: "2024-05-02", ResponseTimeout: 1500 * time.Millisecond, ConnectTimeout: 10 * time.Second})
			return err
		}, "POST", "/digitaltwins/d1/components/thermostat1/commands/getMaxMinReport" + av + "&responseTimeoutInSeconds=2&connectTimeoutInSeconds=10", "", `"2024-05-02"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case r.Method == http.MethodGet && r.URL.Path == "/configurations":
					reply(w, http.StatusOK, "[]")
				case r.Method == http.MethodDelete, r.URL.Path == "/devices/edge 1/applyConfigurationContent":
					w.WriteHeader(http.StatusNoContent)
				case r.Method == http.MethodPatch:
					w.Header().Set("ETag", `"AAAAAAAAAAI="`)
					w.WriteHeader(http.StatusAccepted)
				case r.Method == http.MethodGet && r.URL.Path != "/configurations/fw-update":
					w.Header().Set("ETag", `"AAAAAAAAAAE="`)
					reply(w, http.StatusOK, `{"$dtId":"d/1","$metadata":{}}`)
				case r.Method == http.MethodPost && r.URL.Path != "/configurations/testQueries":
					w.Header().Set("x-ms-command-statuscode", "200")
					reply(w, http.StatusOK, "{}")
				default:
					reply(w, http.StatusOK, "{}")
				}
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

// TestDigitalTwinAnswers reads the headers the hub answers with.
func TestDigitalTwinAnswers(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.Method == http.MethodGet:
			w.Header().Set("ETag", `"AAAAAAAAAAE="`)
			reply(w, http.StatusOK, `{"$dtId":"d1","$metadata":{"$model":"dtmi:x;1"}}`)
		case r.Method == http.MethodPatch:
			w.Header().Set("ETag", `"AAAAAAAAAAI="`)
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Path == "/digitaltwins/d1/commands/nostatus":
			reply(w, http.StatusOK, `{}`)
		case r.URL.Path == "/digitaltwins/d1/commands/empty":
			w.Header().Set("x-ms-command-statuscode", "204")
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("x-ms-command-statuscode", "500")
			w.Header().Set("x-ms-request-id", "r-1")
			reply(w, http.StatusOK, `{"err":"boom"}`)
		}
	})
	c, _ := hub.client(t)
	ctx := testContext(t)
	dt, err := c.GetDigitalTwin(ctx, "d1")
	if err != nil || dt.ETag != "AAAAAAAAAAE=" || dt.ModelID() != "dtmi:x;1" {
		t.Fatalf("GetDigitalTwin: %+v, %v", dt, err)
	}
	var doc map[string]any
	if err := dt.Decode(&doc); err != nil || doc["$dtId"] != "d1" {
		t.Fatalf("Decode: %v, %v", doc, err)
	}
	if etag, err := c.UpdateDigitalTwin(ctx, "d1", nil, ""); err != nil || etag != "AAAAAAAAAAI=" {
		t.Fatalf("UpdateDigitalTwin: %q, %v", etag, err)
	}
	res, err := c.InvokeCommand(ctx, "d1", Command{Name: "fails"})
	if err != nil || res.Status != 500 || string(res.Payload) != `{"err":"boom"}` || res.RequestID != "r-1" {
		t.Fatalf("InvokeCommand: %+v, %v", res, err)
	}
	var v map[string]string
	if err := res.DecodePayload(&v); err != nil || v["err"] != "boom" {
		t.Fatalf("DecodePayload: %v, %v", v, err)
	}
	if res, err := c.InvokeCommand(ctx, "d1", Command{Name: "empty"}); err != nil || string(res.Payload) != "null" || res.Status != 204 {
		t.Fatalf("empty answer: %+v, %v", res, err)
	}
	if _, err := c.InvokeCommand(ctx, "d1", Command{Name: "nostatus"}); err == nil {
		t.Fatal("an answer without x-ms-command-statuscode was accepted")
	}
}

func TestConfigurationArgumentErrors(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, http.StatusOK, "{}") })
	c, _ := hub.client(t)
	ctx := testContext(t)
	calls := map[string]func() error{
		"CreateConfiguration nil":     func() error { _, err := c.CreateConfiguration(ctx, nil); return err },
		"CreateConfiguration no id":   func() error { _, err := c.CreateConfiguration(ctx, &Configuration{}); return err },
		"UpdateConfiguration no id":   func() error { _, err := c.UpdateConfiguration(ctx, &Configuration{}); return err },
		"GetConfiguration no id":      func() error { _, err := c.GetConfiguration(ctx, ""); return err },
		"ListConfigurations negative": func() error { _, err := c.ListConfigurations(ctx, -1); return err },
		"DeleteConfiguration no id":   func() error { return c.DeleteConfiguration(ctx, "", "") },
		"ApplyConfigurationContent":   func() error { return c.ApplyConfigurationContent(ctx, "d", nil) },
		"GetDigitalTwin no id":        func() error { _, err := c.GetDigitalTwin(ctx, ""); return err },
		"UpdateDigitalTwin no id":     func() error { _, err := c.UpdateDigitalTwin(ctx, "", nil, ""); return err },
		"InvokeCommand no name":       func() error { _, err := c.InvokeCommand(ctx, "d", Command{}); return err },
		"InvokeCommand negative":      func() error { _, err := c.InvokeCommand(ctx, "d", Command{Name: "x", ConnectTimeout: -1}); return err },
		"InvokeCommand bad payload": func() error {
			_, err := c.InvokeCommand(ctx, "d", Command{Name: "x", Payload: make(chan int)})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: got nil error", name)
		} else if e := asError(err); e != nil || errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got a hub error %v, want a client-side one", name, err)
		}
	}
	if n := len(hub.requests()); n != 0 {
		t.Errorf("got %d requests, want none for invalid arguments", n)
	}
}
