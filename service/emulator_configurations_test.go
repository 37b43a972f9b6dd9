// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// connectWith connects a device client with options, closed with the
// test. Its desired patches go to the returned channel: the handler is
// registered before Connect, so the subscription is in place once Connect
// returns. setup, when not nil, registers more before Connect.
func connectWith(t *testing.T, ctx context.Context, srv *emulator.Server, cs string, setup func(*device.Client), opts ...device.Option) (*device.Client, chan device.Properties) {
	t.Helper()
	d, err := device.NewFromConnectionString(cs, append([]device.Option{device.WithRootCAs(srv.CAPool())}, opts...)...)
	if err != nil {
		t.Fatalf("device.NewFromConnectionString: %v", err)
	}
	patches := make(chan device.Properties, 16)
	d.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
	if setup != nil {
		setup(d)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, patches
}

// desiredPatch waits for a desired patch holding key.
func desiredPatch(t *testing.T, ctx context.Context, patches chan device.Properties, key string) device.Properties {
	t.Helper()
	for {
		select {
		case p := <-patches:
			if _, ok := p[key]; ok {
				return p
			}
		case <-ctx.Done():
			t.Fatalf("no desired patch with %s: %v", key, ctx.Err())
		}
	}
}

func TestEmulatorConfigurations(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	dev, patches := connectWith(t, ctx, srv, createDevice(t, srv, "chiller-1"), nil)

	cfg, err := c.CreateConfiguration(ctx, &service.Configuration{
		ID: "chiller-water", Priority: 10, TargetCondition: "tags.kind = 'chiller'",
		Content: service.ConfigurationContent{DeviceContent: map[string]any{
			"properties.desired.chillerWater": map[string]any{"temperature": 66, "pressure": 28},
		}},
		Metrics: service.ConfigurationMetrics{Queries: map[string]string{
			"current": "SELECT deviceId FROM devices WHERE properties.reported.chillerWater.status = 'current'",
		}},
	})
	if err != nil {
		t.Fatalf("CreateConfiguration: %v", err)
	}
	if cfg.ETag == "" || cfg.SchemaVersion != "1.0" || cfg.CreatedTimeUTC.IsZero() ||
		cfg.SystemMetrics.Queries["appliedCount"] != "select deviceId from devices where configurations.[[chiller-water]].status = 'Applied'" {
		t.Fatalf("created: %+v", cfg)
	}
	if _, err := c.CreateConfiguration(ctx, cfg); !errors.Is(err, service.ErrAlreadyExists) {
		t.Errorf("create again: got %v, want ErrAlreadyExists", err)
	}

	if _, err := c.UpdateTwin(ctx, "chiller-1", &service.Twin{Tags: service.TwinCollection(`{"kind":"chiller"}`)}, ""); err != nil {
		t.Fatal(err)
	}
	p := desiredPatch(t, ctx, patches, "chillerWater")
	if diff := cmp.Diff(map[string]any{"temperature": 66.0, "pressure": 28.0}, p["chillerWater"]); diff != "" {
		t.Fatalf("patch at the device (-want +got):\n%s", diff)
	}
	if _, err := dev.UpdateReportedProperties(ctx, map[string]any{"chillerWater": map[string]any{"status": "current"}}); err != nil {
		t.Fatal(err)
	}
	cfg, err = c.GetConfiguration(ctx, "chiller-water")
	if err != nil {
		t.Fatal(err)
	}
	tw, err := c.GetTwin(ctx, "chiller-1")
	if err != nil || tw.Configurations["chiller-water"].Status != service.ConfigurationApplied {
		t.Errorf("twin configurations: %v, %v", tw.Configurations, err)
	}
	if diff := cmp.Diff(map[string]int64{"targetedCount": 1, "appliedCount": 1}, cfg.SystemMetrics.Results); diff != "" {
		t.Errorf("system metrics (-want +got):\n%s", diff)
	}
	if cfg.Metrics.Results["current"] != 1 {
		t.Errorf("custom metrics: %v", cfg.Metrics.Results)
	}

	cfg.Priority = 11
	upd, err := c.UpdateConfiguration(ctx, cfg)
	if err != nil || upd.Priority != 11 || upd.ETag == cfg.ETag {
		t.Fatalf("UpdateConfiguration: %+v, %v", upd, err)
	}
	if _, err := c.UpdateConfiguration(ctx, cfg); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("stale etag: got %v, want ErrPreconditionFailed", err)
	}
	cfg.Content.DeviceContent["properties.desired.other"] = 1
	cfg.ETag = ""
	if _, err := c.UpdateConfiguration(ctx, cfg); !errors.Is(err, service.ErrBadRequest) {
		t.Errorf("content change: got %v, want ErrBadRequest", err)
	}
	if _, err := c.UpdateConfiguration(ctx, &service.Configuration{ID: "missing"}); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("update of a missing configuration: got %v, want ErrNotFound", err)
	}
	if _, err := c.CreateConfiguration(ctx, &service.Configuration{ID: "Upper"}); !errors.Is(err, service.ErrBadRequest) {
		t.Errorf("upper-case id: got %v, want ErrBadRequest", err)
	}
	list, err := c.ListConfigurations(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != "chiller-water" {
		t.Fatalf("ListConfigurations: %v, %v", list, err)
	}
	res, err := c.TestConfigurationQueries(ctx, "tags.kind = ", map[string]string{"ok": "SELECT deviceId FROM devices"})
	if err != nil || res.TargetConditionError == "" || len(res.CustomMetricQueryErrors) != 0 {
		t.Fatalf("TestConfigurationQueries: %+v, %v", res, err)
	}

	if err := c.DeleteConfiguration(ctx, "chiller-water", "stale"); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("delete with a stale etag: got %v", err)
	}
	if err := c.DeleteConfiguration(ctx, "chiller-water", upd.ETag); err != nil {
		t.Fatal(err)
	}
	if p = desiredPatch(t, ctx, patches, "chillerWater"); p["chillerWater"] != nil {
		t.Errorf("removal patch: %v, want chillerWater null", p)
	}
	if _, err := c.GetConfiguration(ctx, "chiller-water"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("get deleted: got %v, want ErrNotFound", err)
	}
	if err := c.DeleteConfiguration(ctx, "chiller-water", ""); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("delete deleted: got %v, want ErrNotFound", err)
	}
}

func TestEmulatorApplyConfigurationContent(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "edge1", Capabilities: &service.DeviceCapabilities{IoTEdge: true}}); err != nil {
		t.Fatal(err)
	}
	createDevice(t, srv, "leaf")
	content := &service.ConfigurationContent{ModulesContent: map[string]map[string]any{
		"$edgeAgent": {"properties.desired": map[string]any{"modules": map[string]any{"sensor": map[string]any{"status": "running"}}}},
		"$edgeHub":   {"properties.desired": map[string]any{"routes": map[string]any{}}},
	}}
	if err := c.ApplyConfigurationContent(ctx, "leaf", content); !errors.Is(err, service.ErrBadRequest) {
		t.Errorf("leaf: got %v, want ErrBadRequest", err)
	}
	if err := c.ApplyConfigurationContent(ctx, "edge1", content); err != nil {
		t.Fatalf("ApplyConfigurationContent: %v", err)
	}
	tw, err := c.GetModuleTwin(ctx, "edge1", "$edgeAgent")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tw.Properties.Desired.Get("modules")
	if string(raw) != `{"sensor":{"status":"running"}}` {
		t.Errorf("$edgeAgent desired modules: %s", raw)
	}
}

func TestEmulatorDigitalTwin(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	const model = "dtmi:com:example:Thermostat;1"
	_, patches := connectWith(t, ctx, srv, createDevice(t, srv, "thermo"), func(dev *device.Client) {
		dev.HandleMethod("thermostat1*getMaxMinReport", func(ctx context.Context, req *device.MethodRequest) (int, any) {
			return 200, map[string]any{"since": json.RawMessage(req.Payload)}
		})
		dev.HandleMethod("reboot", func(ctx context.Context, req *device.MethodRequest) (int, any) {
			return 202, json.RawMessage(req.Payload)
		})
	}, device.WithModelID(model))

	dt, err := c.GetDigitalTwin(ctx, "thermo")
	if err != nil {
		t.Fatal(err)
	}
	if dt.ModelID() != model || dt.ETag == "" {
		t.Fatalf("digital twin: %s etag %q", dt.Raw, dt.ETag)
	}
	etag, err := c.UpdateDigitalTwin(ctx, "thermo", []service.DigitalTwinOperation{
		service.DigitalTwinAdd("/thermostat1", service.DigitalTwinComponent(map[string]any{"targetTemperature": 21.5})),
	}, dt.ETag)
	if err != nil || etag == dt.ETag {
		t.Fatalf("UpdateDigitalTwin: %q, %v", etag, err)
	}
	p := desiredPatch(t, ctx, patches, "thermostat1")
	if diff := cmp.Diff(map[string]any{"__t": "c", "targetTemperature": 21.5}, p["thermostat1"]); diff != "" {
		t.Fatalf("desired patch at the device (-want +got):\n%s", diff)
	}
	if _, err := c.UpdateDigitalTwin(ctx, "thermo", []service.DigitalTwinOperation{service.DigitalTwinAdd("/x", 1)}, dt.ETag); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("stale etag: got %v", err)
	}
	if _, err := c.UpdateDigitalTwin(ctx, "thermo", []service.DigitalTwinOperation{{Op: "move", Path: "/x"}}, ""); !errors.Is(err, service.ErrBadRequest) {
		t.Errorf("move: got %v", err)
	}

	// The handlers were registered before Connect: the device listens.
	res, err := c.InvokeCommand(ctx, "thermo", service.Command{Component: "thermostat1", Name: "getMaxMinReport",
		Payload: "2024-05-02", ResponseTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("InvokeCommand: %v", err)
	}
	if res.Status != 200 || string(res.Payload) != `{"since":"2024-05-02"}` || res.RequestID == "" {
		t.Fatalf("command result: %+v %s", res, res.Payload)
	}
	res, err = c.InvokeCommand(ctx, "thermo", service.Command{Name: "reboot", Payload: map[string]int{"delay": 1}})
	if err != nil || res.Status != 202 || string(res.Payload) != `{"delay":1}` {
		t.Fatalf("root command: %+v, %v", res, err)
	}
	if _, err := c.GetDigitalTwin(ctx, "ghost"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("unknown device: got %v", err)
	}
}
