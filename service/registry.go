// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Routes: /devices/{id} and /devices/{id}/modules/{mid}, each segment escaped
// with encodeURIComponent (azure-iothub dist/registry.js).

func devicePath(id string) string { return wire.IdentityPath(id, "") }

func modulePath(deviceID, moduleID string) string { return wire.IdentityPath(deviceID, moduleID) }

// CreateDevice registers d and returns the identity the hub stored,
// including generated keys. Without Authentication the device gets SAS
// authentication with hub-generated keys; a mechanism without a Type gets
// "selfSigned" when it has a thumbprint and "sas" otherwise, as Node fills
// them in. The request has no If-Match, so an existing id fails with
// ErrAlreadyExists. It is never retried (a retry after a lost response would
// report a conflict).
func (c *Client) CreateDevice(ctx context.Context, d *Device) (*Device, error) {
	if d == nil || d.DeviceID == "" {
		return nil, errorf("CreateDevice", "device id is required")
	}
	body := *d
	body.Authentication = normalizeAuth(d.Authentication)
	out := new(Device)
	_, err := c.do(ctx, &call{op: "CreateDevice", method: http.MethodPut, path: devicePath(d.DeviceID), body: &body}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateDevice replaces the identity d.DeviceID with d. When d.ETag is set
// the update only succeeds if the identity still has that etag (otherwise
// ErrPreconditionFailed); with an empty ETag it is unconditional (If-Match
// "*", as Node's Registry.update sends). Send a device obtained from
// GetDevice, changed, to keep its keys: the hub replaces the whole identity.
// With an etag, the call is retried only after 429 and 503 (see
// RetryPolicy): a retry after the update took effect would fail with 412.
func (c *Client) UpdateDevice(ctx context.Context, d *Device) (*Device, error) {
	if d == nil || d.DeviceID == "" {
		return nil, errorf("UpdateDevice", "device id is required")
	}
	body := *d
	body.Authentication = normalizeAuth(d.Authentication)
	out := new(Device)
	_, err := c.do(ctx, &call{
		op: "UpdateDevice", method: http.MethodPut, path: devicePath(d.DeviceID),
		header: ifMatch(d.ETag), body: &body, idempotent: true,
	}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetDevice returns the identity of device id.
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	if id == "" {
		return nil, errorf("GetDevice", "device id is required")
	}
	out := new(Device)
	if _, err := c.do(ctx, &call{op: "GetDevice", method: http.MethodGet, path: devicePath(id), idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteDevice deletes device id with its twin and modules. With a non-empty
// etag the delete only happens if the identity still has that etag, and the
// call is retried only after 429 and 503 (see RetryPolicy). An empty etag
// deletes unconditionally (If-Match "*"); when such a delete is retried
// after an attempt whose outcome is unknown (a network error, 500, 502 or
// 504), a DeviceNotFound answer means that attempt deleted the device, and
// DeleteDevice returns nil.
func (c *Client) DeleteDevice(ctx context.Context, id, etag string) error {
	if id == "" {
		return errorf("DeleteDevice", "device id is required")
	}
	_, err := c.do(ctx, &call{
		op: "DeleteDevice", method: http.MethodDelete, path: devicePath(id),
		header: ifMatch(etag), idempotent: true, goneCode: CodeDeviceNotFound,
	}, nil)
	return err
}

// ListDevices returns up to top device identities (GET /devices?top=N); top
// 0 leaves the number to the hub, which returns at most 1000. Use Query to
// page through large registries.
func (c *Client) ListDevices(ctx context.Context, top int) ([]*Device, error) {
	cl := &call{op: "ListDevices", method: http.MethodGet, path: "/devices", idempotent: true}
	if top > 0 {
		cl.query = "top=" + strconv.Itoa(top)
	}
	var out []*Device
	if _, err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateModule registers module m.ModuleID on device m.DeviceID, with the
// same authentication defaults as CreateDevice. It is never retried.
func (c *Client) CreateModule(ctx context.Context, m *Module) (*Module, error) {
	if m == nil || m.DeviceID == "" || m.ModuleID == "" {
		return nil, errorf("CreateModule", "device id and module id are required")
	}
	body := *m
	body.Authentication = normalizeAuth(m.Authentication)
	out := new(Module)
	_, err := c.do(ctx, &call{op: "CreateModule", method: http.MethodPut, path: modulePath(m.DeviceID, m.ModuleID), body: &body}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateModule replaces a module identity with m, conditionally on m.ETag
// when it is set, and retried as UpdateDevice is.
func (c *Client) UpdateModule(ctx context.Context, m *Module) (*Module, error) {
	if m == nil || m.DeviceID == "" || m.ModuleID == "" {
		return nil, errorf("UpdateModule", "device id and module id are required")
	}
	body := *m
	body.Authentication = normalizeAuth(m.Authentication)
	out := new(Module)
	_, err := c.do(ctx, &call{
		op: "UpdateModule", method: http.MethodPut, path: modulePath(m.DeviceID, m.ModuleID),
		header: ifMatch(m.ETag), body: &body, idempotent: true,
	}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetModule returns a module identity.
func (c *Client) GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error) {
	if deviceID == "" || moduleID == "" {
		return nil, errorf("GetModule", "device id and module id are required")
	}
	out := new(Module)
	_, err := c.do(ctx, &call{op: "GetModule", method: http.MethodGet, path: modulePath(deviceID, moduleID), idempotent: true}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteModule deletes a module identity, conditionally on etag when it is
// not empty. It is retried as DeleteDevice is, with ModuleNotFound on a
// retried unconditional delete meaning success.
func (c *Client) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	if deviceID == "" || moduleID == "" {
		return errorf("DeleteModule", "device id and module id are required")
	}
	_, err := c.do(ctx, &call{
		op: "DeleteModule", method: http.MethodDelete, path: modulePath(deviceID, moduleID),
		header: ifMatch(etag), idempotent: true, goneCode: CodeModuleNotFound,
	}, nil)
	return err
}

// ListModules returns the module identities of a device.
func (c *Client) ListModules(ctx context.Context, deviceID string) ([]*Module, error) {
	if deviceID == "" {
		return nil, errorf("ListModules", "device id is required")
	}
	var out []*Module
	_, err := c.do(ctx, &call{op: "ListModules", method: http.MethodGet, path: devicePath(deviceID) + "/modules", idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRegistryStatistics returns device counts (GET /statistics/devices).
func (c *Client) GetRegistryStatistics(ctx context.Context) (*RegistryStatistics, error) {
	out := new(RegistryStatistics)
	_, err := c.do(ctx, &call{op: "GetRegistryStatistics", method: http.MethodGet, path: "/statistics/devices", idempotent: true}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetServiceStatistics returns the number of connected devices
// (GET /statistics/service).
func (c *Client) GetServiceStatistics(ctx context.Context) (*ServiceStatistics, error) {
	out := new(ServiceStatistics)
	_, err := c.do(ctx, &call{op: "GetServiceStatistics", method: http.MethodGet, path: "/statistics/service", idempotent: true}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}
