// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// TestEmulatorErrorMapping checks the client's errors against the
// emulator's real answers, over both transports: each refusal comes back as
// an *Error with the hub's status, code and message, matching exactly one
// sentinel, and the client stays connected after a twin error.
func TestEmulatorErrorMapping(t *testing.T) {
	t.Parallel()
	type outcome struct {
		op       string
		status   int
		code     int    // 0: the answer carries none (a refused CONNECT)
		codeName string // "" when the code has no name in the catalogue
		sentinel error
	}
	twinCases := []struct {
		name  string
		fault func(srv *emulator.Server) // injected before the call; nil for none
		call  func(ctx context.Context, c *device.Client) error
		want  outcome
	}{
		{
			name: "reported property name the hub refuses",
			call: func(ctx context.Context, c *device.Client) error {
				_, err := c.UpdateReportedProperties(ctx, map[string]int{"fan speed": 1})
				return err
			},
			want: outcome{"UpdateReportedProperties", 400, 400004, "ArgumentInvalid", device.ErrBadRequest},
		},
		{
			name: "reported value over 4 KiB",
			call: func(ctx context.Context, c *device.Client) error {
				_, err := c.UpdateReportedProperties(ctx, map[string]string{"blob": strings.Repeat("x", 5<<10)})
				return err
			},
			want: outcome{"UpdateReportedProperties", 400, 400004, "ArgumentInvalid", device.ErrBadRequest},
		},
		{
			// The device side answers 403100 for a section over its quota
			// (iothub-protocol.md §3.8); the code has no catalogue name.
			name: "reported properties over 32 KiB",
			call: func(ctx context.Context, c *device.Client) error {
				patch := map[string]string{}
				for i := range 10 {
					patch[fmt.Sprint("blob", i)] = strings.Repeat("x", 4000)
				}
				_, err := c.UpdateReportedProperties(ctx, patch)
				return err
			},
			want: outcome{"UpdateReportedProperties", 403, 403100, "", device.ErrForbidden},
		},
		{
			name:  "reported patch throttled",
			fault: func(srv *emulator.Server) { srv.FailNext(emulator.OpPatchReported, 1, emulator.ErrThrottled) },
			call: func(ctx context.Context, c *device.Client) error {
				_, err := c.UpdateReportedProperties(ctx, map[string]int{"n": 1})
				return err
			},
			want: outcome{"UpdateReportedProperties", 429, 429001, "ThrottlingException", device.ErrThrottled},
		},
		{
			name:  "twin read server error",
			fault: func(srv *emulator.Server) { srv.FailNext(emulator.OpDeviceTwin, 1, emulator.ErrServerError) },
			call: func(ctx context.Context, c *device.Client) error {
				_, err := c.GetTwin(ctx)
				return err
			},
			want: outcome{"GetTwin", 500, 500001, "ServerError", device.ErrServerError},
		},
	}
	forEachEmuTransport(t, func(t *testing.T, tr emuTransport) {
		srv := emulator.RunT(t)
		c := emuClient(t, srv, tr, createDevice(t, srv, "dev1"))
		if err := c.Connect(testContext(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		for _, tt := range twinCases {
			t.Run(tt.name, func(t *testing.T) {
				if tt.fault != nil {
					tt.fault(srv)
				}
				err := tt.call(testContext(t), c)
				checkHubError(t, err, tt.want.op, tt.want.status, tt.want.code, tt.want.codeName, tt.want.sentinel)
				var he *device.Error
				if errors.As(err, &he) && (he.Message == "" || he.TrackingID == "" || he.RequestID == "") {
					t.Errorf("got message %q, tracking id %q, request id %q; want the hub's message and tracking id and the request's $rid",
						he.Message, he.TrackingID, he.RequestID)
				}
				if c.State() != device.StateConnected {
					t.Errorf("State() = %v after a twin error, want connected", c.State())
				}
			})
		}

		// Refused connections: the emulator's CONNACK maps to 401.
		wrongKey := func() string {
			cs := createDevice(t, srv, "dev2")
			before, _, _ := strings.Cut(cs, "SharedAccessKey=")
			return before + "SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("not the device's key"))
		}
		disabled := func() string {
			cs := createDevice(t, srv, "dev3")
			disableDevice(t, srv, "dev3")
			return cs
		}
		unknown := func() string {
			return strings.Replace(createDevice(t, srv, "dev4"), "DeviceId=dev4", "DeviceId=nobody", 1)
		}
		for name, cs := range map[string]func() string{"wrong key": wrongKey, "disabled device": disabled, "unknown device": unknown} {
			t.Run(name, func(t *testing.T) {
				c := emuClient(t, srv, tr, cs(), device.WithoutRetries())
				err := c.Connect(testContext(t))
				checkHubError(t, err, "Connect", 401, 0, "", device.ErrUnauthorized)
			})
		}
	})
}

// checkHubError checks that err is a *device.Error with the given fields
// that matches sentinel and no other hub sentinel.
func checkHubError(t *testing.T, err error, op string, status, code int, codeName string, sentinel error) {
	t.Helper()
	var he *device.Error
	if !errors.As(err, &he) {
		t.Fatalf("got %v, want a *device.Error", err)
	}
	if he.Op != op || he.StatusCode != status || he.Code != code || he.CodeName != codeName {
		t.Errorf("got Op %q status %d code %d %q, want %q %d %d %q", he.Op, he.StatusCode, he.Code, he.CodeName, op, status, code, codeName)
	}
	for _, s := range []error{
		device.ErrBadRequest, device.ErrUnauthorized, device.ErrForbidden, device.ErrNotFound, device.ErrPreconditionFailed,
		device.ErrMessageTooLarge, device.ErrThrottled, device.ErrTimeout, device.ErrServerError, device.ErrServiceUnavailable,
	} {
		if got := errors.Is(err, s); got != (s == sentinel) {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == sentinel)
		}
	}
}
