// SPDX-License-Identifier: MIT

package device_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	svc "github.com/iothubemulator/iothub/service"
)

// TestEmulatorTwinBothEnds drives a twin from both ends: reported patches from the
// device whose versions the service then sees, desired patches from the
// service through the handler and through ReceiveDesiredPatch, and GetTwin
// agreeing with the service's view throughout.
func TestEmulatorTwinBothEnds(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		type patch struct {
			props   device.Properties
			version int64
		}
		patches := make(chan patch, 4)
		// Registered before Connect, so its subscription is in place as
		// soon as Connect returns.
		c.OnDesiredPropertiesUpdate(func(p device.Properties, v int64) { patches <- patch{p, v} })
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}

		// Reported properties: the version the device gets back is the one
		// the service sees.
		v1, err := c.UpdateReportedProperties(testContext(t), map[string]any{"firmware": "1.0", "fan": map[string]int{"speed": 2}})
		if err != nil {
			t.Fatalf("UpdateReportedProperties: %v", err)
		}
		checkServiceReported(t, sc, v1, map[string]any{"firmware": "1.0", "fan": map[string]any{"speed": 2.0}})
		v2, err := c.UpdateReportedProperties(testContext(t), map[string]any{"firmware": nil, "fan": map[string]int{"mode": 1}})
		if err != nil {
			t.Fatalf("UpdateReportedProperties (delete and merge): %v", err)
		}
		if v2 != v1+1 {
			t.Errorf("second reported version = %d, want %d", v2, v1+1)
		}
		checkServiceReported(t, sc, v2, map[string]any{"fan": map[string]any{"speed": 2.0, "mode": 1.0}})
		hist := srv.TwinHistory("dev1", "")
		if len(hist) == 0 || hist[len(hist)-1].Section != "reported" || string(hist[len(hist)-1].Patch) != `{"fan":{"mode":1},"firmware":null}` {
			t.Errorf("last recorded twin change = %+v, want the reported patch as sent", hist)
		}

		// Desired properties through the handler.
		d1 := updateDesired(t, sc, map[string]any{"fan": 3, "mode": "auto"})
		select {
		case p := <-patches:
			want := device.Properties{"fan": 3.0, "mode": "auto", "$version": float64(d1)}
			if diff := cmp.Diff(want, p.props); diff != "" || p.version != d1 {
				t.Errorf("desired patch via handler at version %d, want %d; mismatch (-want +got):\n%s", p.version, d1, diff)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no desired patch reached the handler")
		}

		// Without a handler, patches queue for ReceiveDesiredPatch.
		c.OnDesiredPropertiesUpdate(nil)
		d2 := updateDesired(t, sc, map[string]any{"fan": nil, "mode": "eco"})
		got, err := c.ReceiveDesiredPatch(testContext(t))
		if err != nil {
			t.Fatalf("ReceiveDesiredPatch: %v", err)
		}
		if want := (device.Properties{"fan": nil, "mode": "eco", "$version": float64(d2)}); !cmp.Equal(want, got) {
			t.Errorf("ReceiveDesiredPatch = %v, want %v", got, want)
		}
		if d2 != d1+1 {
			t.Errorf("desired version after the second patch = %d, want %d", d2, d1+1)
		}

		tw, err := c.GetTwin(testContext(t))
		if err != nil {
			t.Fatalf("GetTwin: %v", err)
		}
		want := &device.Twin{
			Desired:  device.Properties{"mode": "eco", "$version": float64(d2)},
			Reported: device.Properties{"fan": map[string]any{"speed": 2.0, "mode": 1.0}, "$version": float64(v2)},
		}
		if diff := cmp.Diff(want, tw, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Raw" }, cmp.Ignore())); diff != "" {
			t.Errorf("GetTwin mismatch (-want +got):\n%s", diff)
		}
		select {
		case p := <-patches:
			t.Errorf("handler removed with OnDesiredPropertiesUpdate(nil) still got %v", p.props)
		default:
		}
	})
}

// checkServiceReported checks the reported section as the service reads it.
func checkServiceReported(t *testing.T, sc *svc.Client, version int64, want map[string]any) {
	t.Helper()
	tw, err := sc.GetTwin(testContext(t), "dev1")
	if err != nil {
		t.Fatalf("service GetTwin: %v", err)
	}
	if got := tw.Properties.Reported.Version(); got != version {
		t.Errorf("service sees reported $version %d, want %d", got, version)
	}
	got, err := tw.Properties.Reported.Map()
	if err != nil {
		t.Fatal(err)
	}
	delete(got, "$version")
	delete(got, "$metadata")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service sees reported properties (-want +got):\n%s", diff)
	}
}

// updateDesired patches the desired properties of dev1 as the service and
// returns the new desired $version.
func updateDesired(t *testing.T, sc *svc.Client, desired map[string]any) int64 {
	t.Helper()
	coll, err := svc.NewTwinCollection(desired)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := sc.UpdateTwin(testContext(t), "dev1", &svc.Twin{Properties: svc.TwinProperties{Desired: coll}}, "")
	if err != nil {
		t.Fatalf("service UpdateTwin: %v", err)
	}
	return tw.Properties.Desired.Version()
}

// TestEmulatorTwinThrottled injects the hub's 429 into a reported patch:
// the client returns it as a typed error and does not retry it, and the
// twin is left as it was.
func TestEmulatorTwinThrottled(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		v1, err := c.UpdateReportedProperties(testContext(t), map[string]int{"n": 1})
		if err != nil {
			t.Fatalf("UpdateReportedProperties: %v", err)
		}

		srv.FailNext(emulator.OpPatchReported, 1, emulator.ErrThrottled)
		_, err = c.UpdateReportedProperties(testContext(t), map[string]int{"n": 2})
		var he *device.Error
		if !errors.Is(err, device.ErrThrottled) || !errors.As(err, &he) || he.StatusCode != http.StatusTooManyRequests || he.Code != 429001 || he.Message == "" {
			t.Fatalf("UpdateReportedProperties with injected throttling = %v, want *device.Error 429 (429001) with the hub's message", err)
		}
		checkServiceReported(t, sc, v1, map[string]any{"n": 1.0})

		v2, err := c.UpdateReportedProperties(testContext(t), map[string]int{"n": 3})
		if err != nil {
			t.Fatalf("UpdateReportedProperties after the fault: %v", err)
		}
		if v2 != v1+1 {
			t.Errorf("reported version after the fault = %d, want %d", v2, v1+1)
		}
		checkServiceReported(t, sc, v2, map[string]any{"n": 3.0})
		if c.State() != device.StateConnected {
			t.Errorf("State() = %v after a twin error, want %v", c.State(), device.StateConnected)
		}
	})
}

// TestEmulatorModuleTwin checks that a module's twin operations reach the
// module twin, not its device's.
func TestEmulatorModuleTwin(t *testing.T) {
	t.Parallel()
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		sc := emuService(t, srv)
		createDevice(t, srv, "dev1")
		c := emuClient(t, srv, tr, createModule(t, srv, "dev1", "mod1"))
		patches := make(chan device.Properties, 1)
		c.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { patches <- p })
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		v, err := c.UpdateReportedProperties(testContext(t), map[string]string{"role": "module"})
		if err != nil {
			t.Fatalf("UpdateReportedProperties: %v", err)
		}
		mt, err := sc.GetModuleTwin(testContext(t), "dev1", "mod1")
		if err != nil {
			t.Fatal(err)
		}
		role, _ := mt.Properties.Reported.Get("role")
		if mt.Properties.Reported.Version() != v || string(role) != `"module"` {
			t.Errorf("module twin reported = %s, want role \"module\" at version %d", mt.Properties.Reported, v)
		}
		dt, err := sc.GetTwin(testContext(t), "dev1")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := dt.Properties.Reported.Get("role"); ok {
			t.Errorf("device twin got the module's reported property: %s", dt.Properties.Reported)
		}

		coll, _ := svc.NewTwinCollection(map[string]int{"level": 7})
		if _, err := sc.UpdateModuleTwin(testContext(t), "dev1", "mod1", &svc.Twin{Properties: svc.TwinProperties{Desired: coll}}, ""); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-patches:
			if p["level"] != 7.0 {
				t.Errorf("module desired patch = %v, want level 7", p)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no desired patch reached the module")
		}
	})
}
