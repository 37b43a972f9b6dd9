// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// DigitalTwin is the IoT Plug and Play digital twin of a device: "$dtId",
// property values, components (objects with their own "$metadata") and
// "$metadata" with the model id and each writable property's desired value
// and acknowledgement. It is kept as the JSON the hub sent.
type DigitalTwin struct {
	Raw  json.RawMessage // the digital twin document
	ETag string          // the twin's etag, for If-Match on UpdateDigitalTwin
}

// Decode unmarshals the digital twin into v.
func (d *DigitalTwin) Decode(v any) error { return json.Unmarshal(d.Raw, v) }

// ModelID returns the model id the device announced ($metadata.$model), ""
// when it announced none.
func (d *DigitalTwin) ModelID() string {
	var v struct {
		Metadata struct {
			Model string `json:"$model"`
		} `json:"$metadata"`
	}
	_ = json.Unmarshal(d.Raw, &v)
	return v.Metadata.Model
}

// DigitalTwinOperation is one operation of an UpdateDigitalTwin JSON Patch
// (RFC 6902): add, replace or remove of a writable property ("/prop" or
// "/component/prop") or a whole component ("/component", with a value made
// by DigitalTwinComponent). Build them with DigitalTwinAdd,
// DigitalTwinReplace and DigitalTwinRemove.
type DigitalTwinOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"` // encoded with encoding/json; use json.RawMessage("null") for null
}

// DigitalTwinAdd sets the property at path to value.
func DigitalTwinAdd(path string, value any) DigitalTwinOperation {
	return DigitalTwinOperation{Op: "add", Path: path, Value: value}
}

// DigitalTwinReplace sets the property at path to value.
func DigitalTwinReplace(path string, value any) DigitalTwinOperation {
	return DigitalTwinOperation{Op: "replace", Path: path, Value: value}
}

// DigitalTwinRemove clears the desired value of the property or component
// at path.
func DigitalTwinRemove(path string) DigitalTwinOperation {
	return DigitalTwinOperation{Op: "remove", Path: path}
}

// DigitalTwinComponent is the value of an add or replace of a whole
// component: its writable properties and the empty "$metadata" that marks
// a component (howto-manage-digital-twin). Properties it leaves out are
// cleared.
func DigitalTwinComponent(properties map[string]any) map[string]any {
	v := make(map[string]any, len(properties)+1)
	for k, p := range properties {
		v[k] = p
	}
	v["$metadata"] = map[string]any{}
	return v
}

func digitalTwinPath(id string) string { return "/digitaltwins/" + wire.Escape(id) }

// GetDigitalTwin returns the digital twin of device id.
func (c *Client) GetDigitalTwin(ctx context.Context, id string) (*DigitalTwin, error) {
	if id == "" {
		return nil, errorf("GetDigitalTwin", "device id is required")
	}
	var raw json.RawMessage
	h, err := c.do(ctx, &call{op: "GetDigitalTwin", method: http.MethodGet, path: digitalTwinPath(id), idempotent: true}, &raw)
	if err != nil {
		return nil, err
	}
	return &DigitalTwin{Raw: raw, ETag: unquoteETag(h.Get("ETag"))}, nil
}

// UpdateDigitalTwin applies ops to the digital twin of device id (PATCH
// /digitaltwins/{id}): the hub writes them into the device twin's desired
// properties, as one update. With a non-empty etag the update only happens
// if the twin still has that etag (otherwise ErrPreconditionFailed). It
// returns the twin's new etag. It is never retried.
func (c *Client) UpdateDigitalTwin(ctx context.Context, id string, ops []DigitalTwinOperation, etag string) (string, error) {
	if id == "" {
		return "", errorf("UpdateDigitalTwin", "device id is required")
	}
	if ops == nil {
		ops = []DigitalTwinOperation{}
	}
	cl := &call{op: "UpdateDigitalTwin", method: http.MethodPatch, path: digitalTwinPath(id), body: ops}
	if etag != "" {
		cl.header = ifMatch(etag)
	}
	h, err := c.do(ctx, cl, nil)
	if err != nil {
		return "", err
	}
	return unquoteETag(h.Get("ETag")), nil
}

// Command is a digital twin command invocation.
type Command struct {
	Component       string        // the component whose command it is; "" for the default component
	Name            string        // the command name; required
	Payload         any           // JSON-encoded as the request body; nil sends no body
	ResponseTimeout time.Duration // how long the hub waits for the device's answer; 0 means DefaultMethodResponseTimeout
	ConnectTimeout  time.Duration // how long the hub waits for the device to connect; 0 means it must be connected
}

// CommandResult is the device's answer to a command.
type CommandResult struct {
	Status    int             // the status the device answered (x-ms-command-statuscode)
	Payload   json.RawMessage // the JSON the device answered; "null" when it sent nothing
	RequestID string          // the hub's x-ms-request-id
}

// DecodePayload unmarshals the device's payload into v.
func (r *CommandResult) DecodePayload(v any) error { return json.Unmarshal(r.Payload, v) }

// InvokeCommand runs a command of device id's digital twin (POST
// /digitaltwins/{id}/commands/{name}, or .../components/{component}/
// commands/{name}). The hub delivers it to the device as the direct method
// "{component}*{name}" (or "{name}"), and answers 200 whatever status the
// device chose; that status is in the result. Errors, timeouts and retries
// are InvokeMethod's.
func (c *Client) InvokeCommand(ctx context.Context, id string, cmd Command) (*CommandResult, error) {
	const op = "InvokeCommand"
	if id == "" || cmd.Name == "" {
		return nil, errorf(op, "device id and command name are required")
	}
	if cmd.ResponseTimeout < 0 || cmd.ConnectTimeout < 0 {
		return nil, errorf(op, "timeouts must not be negative")
	}
	resp := cmd.ResponseTimeout
	if resp == 0 {
		resp = DefaultMethodResponseTimeout
	}
	path := digitalTwinPath(id)
	if cmd.Component != "" {
		path += "/components/" + wire.Escape(cmd.Component)
	}
	path += "/commands/" + wire.Escape(cmd.Name)
	query := "responseTimeoutInSeconds=" + strconv.FormatInt(ceilSeconds(resp), 10)
	if cmd.ConnectTimeout > 0 {
		query += "&connectTimeoutInSeconds=" + strconv.FormatInt(ceilSeconds(cmd.ConnectTimeout), 10)
	}
	cl := &call{op: op, method: http.MethodPost, path: path, query: query,
		timeout: time.Duration(ceilSeconds(resp)+ceilSeconds(cmd.ConnectTimeout))*time.Second + methodWireMargin}
	if cmd.Payload != nil {
		b, err := json.Marshal(cmd.Payload)
		if err != nil {
			return nil, errorf(op, "encoding payload: %w", err)
		}
		cl.body = rawBody{data: b, contentType: jsonContentType}
	}
	var payload json.RawMessage
	h, err := c.do(ctx, cl, &payload)
	if err != nil {
		return nil, err
	}
	status, err := strconv.Atoi(h.Get("x-ms-command-statuscode"))
	if err != nil {
		return nil, errorf(op, "the answer has no valid x-ms-command-statuscode header: %q", h.Get("x-ms-command-statuscode"))
	}
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return &CommandResult{Status: status, Payload: payload, RequestID: h.Get("x-ms-request-id")}, nil
}

// unquoteETag strips the quotes of an ETag header value.
func unquoteETag(v string) string {
	if u, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		return u
	}
	return v
}
