// SPDX-License-Identifier: MIT

package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
)

// Integration tests against the emulator: the same client, the hub's real
// semantics (auth, routing, twin versions, error bodies).

// emulatorDevice starts an emulator, registers dev1 and returns a client
// for it (not yet connected).
func emulatorDevice(t *testing.T, opts ...device.Option) (*emulator.Server, *device.Client) {
	t.Helper()
	e := emulator.RunT(t)
	cs, err := e.CreateDevice("dev1")
	if err != nil {
		t.Fatal(err)
	}
	base := []device.Option{device.WithRootCAs(e.CAPool()), device.WithRetryPolicy(fastRetry), device.WithOperationTimeout(5 * time.Second)}
	c, err := device.NewFromConnectionString(cs, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return e, c
}

// service calls the emulator's service REST API as iothubowner and returns
// the status and body.
func service(t *testing.T, e *emulator.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	tok, err := sas.NewToken(e.HostName(), "iothubowner", emulator.WellKnownOwnerKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(testContext(t), method, "https://"+e.HTTPSAddr()+path+"?api-version=2021-04-12", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", `"*"`)
	tr := &http.Transport{TLSClientConfig: e.TLSConfig()}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestEmulatorTelemetry(t *testing.T) {
	e, c := emulatorDevice(t)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	sent := &device.Message{
		Body: []byte(`{"t":21.5}`), MessageID: "m 1", CorrelationID: "c/1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"alert level": "high & low", "plus": "a+b"},
	}
	if err := c.SendMessage(testContext(t), sent); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	got, err := e.WaitMessages("dev1", 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if m.MessageID != sent.MessageID || m.CorrelationID != sent.CorrelationID || m.ContentType != sent.ContentType ||
		m.ContentEncoding != sent.ContentEncoding || string(m.Body) != string(sent.Body) {
		t.Errorf("emulator recorded %+v, want the fields of %+v", m, sent)
	}
	if diff := cmp.Diff(sent.Properties, m.Properties); diff != "" {
		t.Errorf("application properties mismatch (-sent +recorded):\n%s", diff)
	}
}

func TestEmulatorTwin(t *testing.T) {
	e, c := emulatorDevice(t)
	patches := make(chan device.Properties, 1)
	c.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	v, err := c.UpdateReportedProperties(testContext(t), map[string]any{"firmware": "1.0"})
	if err != nil {
		t.Fatalf("UpdateReportedProperties: %v", err)
	}
	twin, err := c.GetTwin(testContext(t))
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	if twin.Reported["firmware"] != "1.0" || twin.Reported.Version() != v {
		t.Errorf("reported = %v, want firmware 1.0 at version %d", twin.Reported, v)
	}
	// Handlers registered before Connect are subscribed in its SUBSCRIBE.
	status, body := service(t, e, "PATCH", "/twins/dev1", map[string]any{"properties": map[string]any{"desired": map[string]any{"fan": 3}}})
	if status != http.StatusOK {
		t.Fatalf("PATCH twin: %d %s", status, body)
	}
	select {
	case p := <-patches:
		if p["fan"] != 3.0 || p.Version() < 2 {
			t.Errorf("patch = %v, want fan 3 with a $version of at least 2", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no desired patch from the emulator")
	}
}

func TestEmulatorTwinError(t *testing.T) {
	e, c := emulatorDevice(t)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	e.FailNext(emulator.OpDeviceTwin, 1, emulator.ErrThrottled)
	_, err := c.GetTwin(testContext(t))
	var he *device.Error
	if !errors.As(err, &he) || !errors.Is(err, device.ErrThrottled) || he.Code != 429001 {
		t.Errorf("GetTwin with injected throttling = %v, want *Error 429 / 429001", err)
	}
	if _, err := c.GetTwin(testContext(t)); err != nil {
		t.Errorf("GetTwin after the fault: %v", err)
	}
}

func TestEmulatorMethod(t *testing.T) {
	e, c := emulatorDevice(t)
	c.HandleMethod("setFan", func(_ context.Context, req *device.MethodRequest) (int, any) {
		return 201, map[string]json.RawMessage{"echo": req.Payload}
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	status, body := service(t, e, "POST", "/twins/dev1/methods", map[string]any{
		"methodName": "setFan", "payload": map[string]int{"speed": 3}, "responseTimeoutInSeconds": 5,
	})
	if status != http.StatusOK {
		t.Fatalf("invoke: %d %s", status, body)
	}
	var got struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != 201 || string(got.Payload) != `{"echo":{"speed":3}}` {
		t.Errorf("invoke result = %d %s, want 201 {\"echo\":{\"speed\":3}}", got.Status, got.Payload)
	}
}

func TestEmulatorWebSocketsModule(t *testing.T) {
	e := emulator.RunT(t)
	if _, err := e.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	cs, err := e.CreateModule("dev1", "mod1")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	parsed.HostName = e.WebSocketHost() // MQTT over WebSockets is served on the HTTPS port
	c, err := device.NewFromConnectionString(parsed.String(), device.WithRootCAs(e.CAPool()), device.WithWebSockets())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatalf("Connect over WebSockets: %v", err)
	}
	if err := c.SendMessage(testContext(t), &device.Message{Body: []byte("x"), OutputName: "out1"}); err != nil {
		t.Fatal(err)
	}
	got, err := e.WaitMessages("dev1", 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ModuleID != "mod1" || got[0].OutputName != "out1" || got[0].Transport != "mqtt-ws" {
		t.Errorf("recorded %+v, want module mod1, output out1 over mqtt-ws", got[0])
	}
}
