// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// These tests drive the emulator through the exported client only, as a user
// of both packages would. Retries are off so that emulator bugs show.

func newEmulatorClient(t *testing.T) (*emulator.Server, *service.Client, context.Context) {
	t.Helper()
	srv := emulator.RunT(t)
	c, err := service.NewFromConnectionString(srv.ConnectionString(),
		service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatalf("NewFromConnectionString(%q): %v", srv.ConnectionString(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return srv, c, ctx
}

func TestEmulatorDeviceLifecycle(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)

	d, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev+1$x"})
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("created device has no generated keys: %+v", d.Authentication)
	}
	if d.ETag == "" || d.Status != service.StatusEnabled || d.GenerationID == "" {
		t.Errorf("got etag %q status %q generation %q, want all set and enabled", d.ETag, d.Status, d.GenerationID)
	}
	if _, err := service.DeviceConnectionString(c.HostName(), d); err != nil {
		t.Errorf("DeviceConnectionString: %v", err)
	}

	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev+1$x"}); !errors.Is(err, service.ErrAlreadyExists) {
		t.Errorf("second CreateDevice: got %v, want ErrAlreadyExists", err)
	}

	got, err := c.GetDevice(ctx, "dev+1$x")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	if got.DeviceID != "dev+1$x" || got.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("GetDevice = %+v, want the created device", got)
	}

	got.Status = service.StatusDisabled
	upd, err := c.UpdateDevice(ctx, got)
	if err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	if upd.Status != service.StatusDisabled || upd.ETag == got.ETag {
		t.Errorf("UpdateDevice: status %q etag %q (was %q), want disabled and a new etag", upd.Status, upd.ETag, got.ETag)
	}
	if _, err := c.UpdateDevice(ctx, got); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("UpdateDevice with a stale etag: got %v, want ErrPreconditionFailed", err)
	}

	stats, err := c.GetRegistryStatistics(ctx)
	if err != nil {
		t.Fatalf("GetRegistryStatistics: %v", err)
	}
	if stats.TotalDeviceCount != 1 || stats.DisabledDeviceCount != 1 {
		t.Errorf("statistics %+v, want 1 device, 1 disabled", stats)
	}
	list, err := c.ListDevices(ctx, 0)
	if err != nil || len(list) != 1 {
		t.Errorf("ListDevices = %d devices, %v; want 1", len(list), err)
	}

	if err := c.DeleteDevice(ctx, "dev+1$x", "wrong"); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("DeleteDevice with a wrong etag: got %v, want ErrPreconditionFailed", err)
	}
	if err := c.DeleteDevice(ctx, "dev+1$x", ""); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	_, err = c.GetDevice(ctx, "dev+1$x")
	var e *service.Error
	if !errors.As(err, &e) || e.Code != service.CodeDeviceNotFound || !errors.Is(err, service.ErrNotFound) {
		t.Errorf("GetDevice after delete: got %v, want 404001 DeviceNotFound", err)
	}
}

func TestEmulatorAuthenticationKinds(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	tests := []struct {
		name string
		d    *service.Device
		want service.AuthenticationType
	}{
		{"given keys", &service.Device{DeviceID: "k", Authentication: service.SASAuth("cHJpbWFyeS1rZXktZm9yLXRlc3Q=", "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdA==")}, service.AuthSAS},
		{"x509", &service.Device{DeviceID: "x", Authentication: service.X509Auth("0123456789ABCDEF0123456789ABCDEF01234567", "")}, service.AuthSelfSigned},
		{"ca", &service.Device{DeviceID: "c", Authentication: service.CAAuth()}, service.AuthCertificateAuthority},
		{"edge", &service.Device{DeviceID: "e", Capabilities: &service.DeviceCapabilities{IoTEdge: true}}, service.AuthSAS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.CreateDevice(ctx, tt.d)
			if err != nil {
				t.Fatalf("CreateDevice: %v", err)
			}
			if d.Authentication == nil || d.Authentication.Type != tt.want {
				t.Errorf("authentication %+v, want type %s", d.Authentication, tt.want)
			}
			if tt.d.Capabilities != nil && (d.Capabilities == nil || !d.Capabilities.IoTEdge) {
				t.Errorf("capabilities %+v, want iotEdge", d.Capabilities)
			}
			if tt.name == "given keys" && d.Authentication.SymmetricKey.PrimaryKey != tt.d.Authentication.SymmetricKey.PrimaryKey {
				t.Errorf("primary key %q, want the given one", d.Authentication.SymmetricKey.PrimaryKey)
			}
		})
	}
}

func TestEmulatorModules(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	m, err := c.CreateModule(ctx, &service.Module{DeviceID: "dev1", ModuleID: "mod1"})
	if err != nil {
		t.Fatalf("CreateModule: %v", err)
	}
	if m.Authentication == nil || m.Authentication.SymmetricKey == nil || m.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Errorf("module has no generated keys: %+v", m.Authentication)
	}
	if _, err := c.CreateModule(ctx, &service.Module{DeviceID: "dev1", ModuleID: "mod1"}); !errors.Is(err, service.ErrAlreadyExists) {
		t.Errorf("second CreateModule: got %v, want ErrAlreadyExists", err)
	}
	if _, err := c.GetModule(ctx, "dev1", "mod1"); err != nil {
		t.Errorf("GetModule: %v", err)
	}
	mods, err := c.ListModules(ctx, "dev1")
	if err != nil || len(mods) != 1 || mods[0].ModuleID != "mod1" {
		t.Errorf("ListModules = %v, %v; want [mod1]", mods, err)
	}
	tw, err := c.GetModuleTwin(ctx, "dev1", "mod1")
	if err != nil || tw.ModuleID != "mod1" {
		t.Errorf("GetModuleTwin = %+v, %v; want the module twin", tw, err)
	}
	if err := c.DeleteModule(ctx, "dev1", "mod1", ""); err != nil {
		t.Fatalf("DeleteModule: %v", err)
	}
	_, err = c.GetModule(ctx, "dev1", "mod1")
	var e *service.Error
	if !errors.As(err, &e) || e.Code != service.CodeModuleNotFound {
		t.Errorf("GetModule after delete: got %v, want 404010 ModuleNotFound", err)
	}
}

func TestEmulatorTwins(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	before, err := c.GetTwin(ctx, "dev1")
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	tags, _ := service.NewTwinCollection(map[string]any{"site": map[string]any{"building": "B7"}})
	desired, _ := service.NewTwinCollection(map[string]any{"fanSpeed": 3})
	after, err := c.UpdateTwin(ctx, "dev1", &service.Twin{Tags: tags, Properties: service.TwinProperties{Desired: desired}}, before.ETag)
	if err != nil {
		t.Fatalf("UpdateTwin: %v", err)
	}
	if after.ETag == before.ETag || after.Version <= before.Version {
		t.Errorf("etag %q version %d (before %q %d), want both to change", after.ETag, after.Version, before.ETag, before.Version)
	}
	if got := after.Properties.Desired.Version(); got != before.Properties.Desired.Version()+1 {
		t.Errorf("desired $version %d, want %d", got, before.Properties.Desired.Version()+1)
	}
	var d struct {
		FanSpeed int `json:"fanSpeed"`
	}
	if err := after.Properties.Desired.Decode(&d); err != nil || d.FanSpeed != 3 {
		t.Errorf("desired = %s, want fanSpeed 3", after.Properties.Desired)
	}
	if _, err := c.UpdateTwin(ctx, "dev1", &service.Twin{Tags: tags}, before.ETag); !errors.Is(err, service.ErrPreconditionFailed) {
		t.Errorf("UpdateTwin with a stale etag: got %v, want ErrPreconditionFailed", err)
	}

	remove, _ := service.NewTwinCollection(map[string]any{"fanSpeed": nil})
	removed, err := c.UpdateTwin(ctx, "dev1", &service.Twin{Properties: service.TwinProperties{Desired: remove}}, "")
	if err != nil {
		t.Fatalf("UpdateTwin delete: %v", err)
	}
	if _, ok := removed.Properties.Desired.Get("fanSpeed"); ok {
		t.Errorf("desired %s still has fanSpeed after patching it to null", removed.Properties.Desired)
	}

	newTags, _ := service.NewTwinCollection(map[string]any{"owner": "ops"})
	replaced, err := c.ReplaceTwin(ctx, "dev1", &service.Twin{Tags: newTags}, "")
	if err != nil {
		t.Fatalf("ReplaceTwin: %v", err)
	}
	m, _ := replaced.Tags.Map()
	if _, ok := m["site"]; ok || m["owner"] != "ops" {
		t.Errorf("tags after replace %v, want only owner", m)
	}

	if _, err := c.GetTwin(ctx, "nope"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("GetTwin unknown device: got %v, want ErrNotFound", err)
	}
}

func TestEmulatorQueryPaging(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	for i := range 5 {
		if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	q := c.Query("SELECT * FROM devices", 2)
	var pages, items int
	for q.HasMore() {
		page, err := q.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		pages++
		items += len(page)
		if q.ItemType() != service.ItemTypeTwin {
			t.Errorf("ItemType = %q, want Twin", q.ItemType())
		}
	}
	if pages != 3 || items != 5 {
		t.Errorf("got %d items in %d pages, want 5 in 3", items, pages)
	}

	var ids []string
	for tw, err := range c.Query("SELECT * FROM devices WHERE deviceId = 'd3'", 0).Twins(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tw.DeviceID)
	}
	if len(ids) != 1 || ids[0] != "d3" {
		t.Errorf("filtered query = %v, want [d3]", ids)
	}
}

func TestEmulatorMethodOffline(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot", ResponseTimeout: 5 * time.Second})
	if !errors.Is(err, service.ErrDeviceNotOnline) {
		t.Errorf("InvokeMethod on an offline device: got %v, want ErrDeviceNotOnline", err)
	}
	if _, err := c.InvokeMethod(ctx, "ghost", service.MethodCall{Name: "reboot"}); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("InvokeMethod on an unknown device: got %v, want ErrNotFound", err)
	}
}

func TestEmulatorBulk(t *testing.T) {
	_, c, ctx := newEmulatorClient(t)
	res, err := c.ImportDevices(ctx, service.ImportCreate, []service.ExportImportDevice{{ID: "a"}, {ID: "b"}})
	if err != nil || !res.IsSuccessful {
		t.Fatalf("ImportDevices = %+v, %v; want success", res, err)
	}
	res, err = c.BulkRegistryOperation(ctx, []service.ExportImportDevice{
		{ID: "a", ImportMode: service.ImportCreate},
		{ID: "c", ImportMode: service.ImportCreate},
	})
	if !errors.Is(err, service.ErrBadRequest) || res == nil || res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].DeviceID != "a" {
		t.Errorf("bulk with a duplicate = %+v, %v; want a 400 with one error for a", res, err)
	}
}

// TestEmulatorRetriesThrottling checks the client's retry against the
// emulator's injected 429.
func TestEmulatorRetriesThrottling(t *testing.T) {
	srv, _, ctx := newEmulatorClient(t)
	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()),
		service.WithRetryPolicy(service.ExponentialBackoff{MaxFailures: 3, Initial: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	srv.FailNext(emulator.OpGetTwin, 2, emulator.ErrThrottled)
	if _, err := c.GetTwin(ctx, "dev1"); err != nil {
		t.Errorf("GetTwin after two throttled attempts: %v", err)
	}
	srv.FailNext(emulator.OpUpdateTwin, 1, emulator.ErrThrottled)
	if _, err := c.UpdateTwin(ctx, "dev1", &service.Twin{}, ""); !errors.Is(err, service.ErrThrottled) {
		t.Errorf("UpdateTwin (never retried) after a throttle: got %v, want ErrThrottled", err)
	}
}
