// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

func statusOf(err error) int {
	var se *service.Error
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// TestReactorsCompose: FailNext no longer replaces what AddReactor
// installed; reactors are asked in the order added, the first fault wins,
// and each one's remove function takes out only that one.
func TestReactorsCompose(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var asked atomic.Int32
	removeTags := srv.AddReactor(func(op emulator.Op, id emulator.Identity) *emulator.Fault {
		if op == emulator.OpUpdateTwin && id.DeviceID == "dev1" {
			asked.Add(1)
			return &emulator.Fault{Err: emulator.ErrServerError}
		}
		return nil
	})
	srv.FailNext(emulator.OpGetTwin, 2, emulator.ErrThrottled)

	for i, want := range []int{429, 429, 0} {
		if _, err := svc.GetTwin(ctx, "dev1"); statusOf(err) != want {
			t.Errorf("GetTwin %d: got %v, want status %d", i, err, want)
		}
	}
	if _, err := svc.UpdateTwin(ctx, "dev1", &service.Twin{Tags: service.TwinCollection(`{"a":1}`)}, "*"); statusOf(err) != 500 || asked.Load() != 1 {
		t.Errorf("UpdateTwin with the first reactor still installed: got %v (asked %d times), want 500", err, asked.Load())
	}
	removeTags()
	if _, err := svc.UpdateTwin(ctx, "dev1", &service.Twin{Tags: service.TwinCollection(`{"a":1}`)}, "*"); err != nil {
		t.Errorf("UpdateTwin after remove: %v", err)
	}

	// A delay is emulator time: a frozen clock holds the call until it is
	// fast-forwarded.
	srv.SetTime(time.Now())
	srv.AddReactor(func(op emulator.Op, _ emulator.Identity) *emulator.Fault {
		if op == emulator.OpGetTwin {
			return &emulator.Fault{Delay: time.Hour}
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { _, err := svc.GetTwin(ctx, "dev1"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a call delayed an hour returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	srv.FastForward(time.Hour)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the delay: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed call did not return after FastForward")
	}
	srv.ClearReactors()
	if _, err := svc.GetTwin(ctx, "dev1"); err != nil {
		t.Errorf("GetTwin after ClearReactors: %v", err)
	}
}

func TestPutModuleAndDeleteDevice(t *testing.T) {
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("edge1"); err != nil {
		t.Fatal(err)
	}
	m, err := srv.PutModule(&emulator.Module{DeviceID: "edge1", ModuleID: "filter", Auth: emulator.Authentication{PrimaryKey: "bW9kdWxlLXByaW1hcnkta2V5LTAx"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Auth.Type != emulator.AuthSAS || m.Auth.PrimaryKey != "bW9kdWxlLXByaW1hcnkta2V5LTAx" || m.Auth.SecondaryKey == "" || m.ETag == "" {
		t.Errorf("PutModule returned %+v; want SAS with the given primary key and a generated secondary", m)
	}
	if got, err := srv.Module("edge1", "filter"); err != nil || got.ModuleID != "filter" || got.Auth.PrimaryKey != m.Auth.PrimaryKey {
		t.Errorf("Module: got %+v, %v", got, err)
	}
	if err := srv.DeleteDevice("edge1"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Module("edge1", "filter"); err == nil {
		t.Error("the module outlived its device")
	}
	if _, err := srv.Device("edge1"); err == nil {
		t.Error("Device found after DeleteDevice")
	}
}
