// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Direct method timeouts. The defaults are Node's (DeviceMethod in
// azure-iothub dist/device_method.js); the hub enforces the 5-300 s range
// of the response timeout and 0-300 s of the connect timeout.
const (
	DefaultMethodResponseTimeout = 30 * time.Second
	// methodWireMargin is added to the two timeouts for the HTTP exchange
	// itself, as the C# service SDK does (ServiceClient.GetOperationTimeout,
	// "for wire time"); Node uses the bare sum and can give up just before
	// the hub's own 504101 arrives.
	methodWireMargin = 15 * time.Second
)

// MethodCall describes a direct method invocation.
type MethodCall struct {
	Name            string        // method name; required
	Payload         any           // JSON-encoded as the method payload; nil sends null; use json.RawMessage for pre-encoded JSON
	ResponseTimeout time.Duration // how long the hub waits for the device's answer; 0 means DefaultMethodResponseTimeout; whole seconds, rounded up
	ConnectTimeout  time.Duration // how long the hub waits for the device to connect; 0 means it must be connected already
}

// MethodResult is the device's answer to a direct method.
type MethodResult struct {
	Status  int             `json:"status"`  // status code the device chose
	Payload json.RawMessage `json:"payload"` // JSON the device sent; "null" when it sent nothing
}

// DecodePayload unmarshals the device's payload into v.
func (r *MethodResult) DecodePayload(v any) error {
	if len(r.Payload) == 0 {
		return nil
	}
	return json.Unmarshal(r.Payload, v)
}

// methodRequest is the body Node sends (device_method.js invokeOn).
type methodRequest struct {
	MethodName               string `json:"methodName"`
	Payload                  any    `json:"payload"`
	ResponseTimeoutInSeconds int64  `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64  `json:"connectTimeoutInSeconds"`
}

// InvokeMethod calls a direct method on a device and waits for its answer
// (POST /twins/{id}/methods). The hub answers 200 whatever status the device
// chose; that status is in the result. A device that is not connected gives
// an error matching ErrDeviceNotOnline, and one that does not answer in
// time an error matching ErrTimeout. The HTTP request is bounded by both
// timeouts plus a margin (past it the error matches ErrTimeout too), and
// by ctx. It is never retried:
// the device may already have run the method.
func (c *Client) InvokeMethod(ctx context.Context, deviceID string, m MethodCall) (*MethodResult, error) {
	if deviceID == "" {
		return nil, errorf("InvokeMethod", "device id is required")
	}
	return c.invoke(ctx, "InvokeMethod", twinPath(deviceID)+"/methods", m)
}

// InvokeModuleMethod calls a direct method on a module
// (POST /twins/{id}/modules/{mid}/methods); see InvokeMethod.
func (c *Client) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, m MethodCall) (*MethodResult, error) {
	if deviceID == "" || moduleID == "" {
		return nil, errorf("InvokeModuleMethod", "device id and module id are required")
	}
	return c.invoke(ctx, "InvokeModuleMethod", moduleTwinPath(deviceID, moduleID)+"/methods", m)
}

func (c *Client) invoke(ctx context.Context, op, path string, m MethodCall) (*MethodResult, error) {
	if m.Name == "" {
		return nil, errorf(op, "method name is required")
	}
	if m.ResponseTimeout < 0 || m.ConnectTimeout < 0 {
		return nil, errorf(op, "timeouts must not be negative")
	}
	resp := m.ResponseTimeout
	if resp == 0 {
		resp = DefaultMethodResponseTimeout
	}
	body := methodRequest{
		MethodName:               m.Name,
		Payload:                  m.Payload,
		ResponseTimeoutInSeconds: ceilSeconds(resp),
		ConnectTimeoutInSeconds:  ceilSeconds(m.ConnectTimeout),
	}
	timeout := time.Duration(body.ResponseTimeoutInSeconds+body.ConnectTimeoutInSeconds)*time.Second + methodWireMargin
	out := new(MethodResult)
	if _, err := c.do(ctx, &call{op: op, method: http.MethodPost, path: path, body: &body, timeout: timeout}, out); err != nil {
		return nil, err
	}
	return out, nil
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
