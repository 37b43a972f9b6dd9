// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// sentinels lists every sentinel a hub answer can match.
var sentinels = []error{
	service.ErrBadRequest, service.ErrUnauthorized, service.ErrForbidden, service.ErrNotFound,
	service.ErrDeviceNotOnline, service.ErrAlreadyExists, service.ErrPreconditionFailed,
	service.ErrMessageTooLarge, service.ErrThrottled, service.ErrTimeout, service.ErrServerError,
	service.ErrServiceUnavailable,
}

// TestEmulatorErrorMapping checks the client's errors against the
// emulator's real answers, in both body forms (A for the registry and
// twins, B for direct methods) and with the iothub-errorcode header: each
// comes back as an *Error carrying the hub's status, code, code name,
// message and tracking id and the request's Request-Id, and matches
// exactly one sentinel.
func TestEmulatorErrorMapping(t *testing.T) {
	srv, c, ctx := newEmulatorClient(t)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateModule(ctx, &service.Module{DeviceID: "dev1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	stale, err := c.GetDevice(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateDevice(ctx, stale); err != nil { // moves the etag on
		t.Fatal(err)
	}
	cs := srv.ConnectionString()
	before, _, _ := strings.Cut(cs, "SharedAccessKey=")
	wrongKey, err := service.NewFromConnectionString(before+"SharedAccessKey="+base64.StdEncoding.EncodeToString([]byte("not the key")),
		service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	reader, err := service.NewFromConnectionString(srv.PolicyConnectionString("registryRead"),
		service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		fault    func() // injected before the call; nil for none
		call     func(ctx context.Context) error
		op       string
		status   int
		code     int
		codeName string
		sentinel error
		info     bool // the answer is form B and carries an info object
	}{
		{
			name: "unknown device", op: "GetDevice", status: 404, code: 404001, codeName: "DeviceNotFound", sentinel: service.ErrNotFound,
			call: func(ctx context.Context) error { _, err := c.GetDevice(ctx, "ghost"); return err },
		},
		{
			name: "unknown module", op: "GetModule", status: 404, code: 404010, codeName: "ModuleNotFound", sentinel: service.ErrNotFound,
			call: func(ctx context.Context) error { _, err := c.GetModule(ctx, "dev1", "ghost"); return err },
		},
		{
			name: "device exists", op: "CreateDevice", status: 409, code: 409001, codeName: "DeviceAlreadyExists", sentinel: service.ErrAlreadyExists,
			call: func(ctx context.Context) error {
				_, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
				return err
			},
		},
		{
			name: "module exists", op: "CreateModule", status: 409, code: 409301, codeName: "ModuleAlreadyExistsOnDevice", sentinel: service.ErrAlreadyExists,
			call: func(ctx context.Context) error {
				_, err := c.CreateModule(ctx, &service.Module{DeviceID: "dev1", ModuleID: "m1"})
				return err
			},
		},
		{
			name: "stale etag", op: "UpdateDevice", status: 412, code: 412001, codeName: "PreconditionFailed", sentinel: service.ErrPreconditionFailed,
			call: func(ctx context.Context) error { _, err := c.UpdateDevice(ctx, stale); return err },
		},
		{
			name: "twin property name the hub refuses", op: "UpdateTwin", status: 400, code: 400004, codeName: "ArgumentInvalid", sentinel: service.ErrBadRequest,
			call: func(ctx context.Context) error {
				tags, _ := service.NewTwinCollection(map[string]int{"a.b": 1})
				_, err := c.UpdateTwin(ctx, "dev1", &service.Twin{Tags: tags}, "")
				return err
			},
		},
		{
			name: "wrong key", op: "GetDevice", status: 401, code: 401002, codeName: "IotHubUnauthorizedAccess", sentinel: service.ErrUnauthorized,
			call: func(ctx context.Context) error { _, err := wrongKey.GetDevice(ctx, "dev1"); return err },
		},
		{
			name: "policy without the permission", op: "CreateDevice", status: 401, code: 401002, codeName: "IotHubUnauthorizedAccess", sentinel: service.ErrUnauthorized,
			call: func(ctx context.Context) error {
				_, err := reader.CreateDevice(ctx, &service.Device{DeviceID: "new"})
				return err
			},
		},
		{
			name: "method on an offline device", op: "InvokeMethod", status: 404, code: 404103, codeName: "DeviceNotOnline", sentinel: service.ErrDeviceNotOnline, info: true,
			call: func(ctx context.Context) error {
				_, err := c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot"})
				return err
			},
		},
		{
			name: "method timeout out of range", op: "InvokeMethod", status: 400, code: 400004, codeName: "ArgumentInvalid", sentinel: service.ErrBadRequest,
			call: func(ctx context.Context) error {
				_, err := c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot", ResponseTimeout: 400 * time.Second})
				return err
			},
		},
		{
			name: "method not answered", op: "InvokeModuleMethod", status: 504, code: 504101, codeName: "GatewayTimeout", sentinel: service.ErrTimeout, info: true,
			fault: func() { srv.FailNext(emulator.OpInvokeMethod, 1, emulator.ErrMethodTimeout) },
			call: func(ctx context.Context) error {
				_, err := c.InvokeModuleMethod(ctx, "dev1", "m1", service.MethodCall{Name: "reboot"})
				return err
			},
		},
		{
			name: "throttled", op: "GetTwin", status: 429, code: 429001, codeName: "ThrottlingException", sentinel: service.ErrThrottled,
			fault: func() { srv.FailNext(emulator.OpGetTwin, 1, emulator.ErrThrottled) },
			call:  func(ctx context.Context) error { _, err := c.GetTwin(ctx, "dev1"); return err },
		},
		{
			name: "server error", op: "GetModuleTwin", status: 500, code: 500001, codeName: "ServerError", sentinel: service.ErrServerError,
			fault: func() { srv.FailNext(emulator.OpGetTwin, 1, emulator.ErrServerError) },
			call:  func(ctx context.Context) error { _, err := c.GetModuleTwin(ctx, "dev1", "m1"); return err },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				tt.fault()
			}
			err := tt.call(ctx)
			var e *service.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a *service.Error", err)
			}
			if e.Op != tt.op || e.StatusCode != tt.status || e.Code != tt.code || e.CodeName != tt.codeName {
				t.Errorf("got Op %q status %d code %d %q, want %q %d %d %q", e.Op, e.StatusCode, e.Code, e.CodeName, tt.op, tt.status, tt.code, tt.codeName)
			}
			if e.Message == "" || e.TrackingID == "" || e.RequestID == "" || len(e.Body) == 0 {
				t.Errorf("got message %q, tracking id %q, request id %q, body %q; want all set", e.Message, e.TrackingID, e.RequestID, e.Body)
			}
			if (e.Info != nil) != tt.info {
				t.Errorf("Info = %s, want an info object: %v", e.Info, tt.info)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == tt.sentinel)
				}
			}
		})
	}
}
