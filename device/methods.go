// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxMethodPayloadSize is the hub's limit on a direct method response
// payload (IoT Hub quotas: 128 KB).
const MaxMethodPayloadSize = 128 * 1024

// MethodRequest is a direct method invocation from the hub.
type MethodRequest struct {
	Name      string          // method name
	RequestID string          // $rid; the response must echo it
	Payload   json.RawMessage // the invocation's payload; "null" when the hub sent an empty body
}

// MethodResponse answers a MethodRequest.
type MethodResponse struct {
	RequestID string // the request's RequestID
	Status    int    // status chosen by the device, e.g. 200
	Payload   any    // marshalled with encoding/json; use json.RawMessage for ready JSON
}

// NewMethodResponse returns the response to req (Python's
// MethodResponse.create_from_method_request).
func NewMethodResponse(req *MethodRequest, status int, payload any) *MethodResponse {
	return &MethodResponse{RequestID: req.RequestID, Status: status, Payload: payload}
}

// MethodHandler handles a direct method and returns the status and payload
// to respond with. ctx is cancelled when the client closes; the hub gives up
// after the invocation's responseTimeoutInSeconds regardless.
type MethodHandler func(ctx context.Context, req *MethodRequest) (status int, payload any)

// HandleMethod registers h for the method called name and subscribes to
// $iothub/methods/POST/# (QoS 0) if needed. Each invocation runs on its own
// goroutine and its result is sent as the response. h takes every request
// for name, including those that arrived before it was registered and that
// no ReceiveMethodRequest call took (the hub keeps subscriptions between
// connections, so a request can arrive right after Connect); while it is
// registered, ReceiveMethodRequest calls for name wait. nil removes the
// handler.
func (c *Client) HandleMethod(name string, h MethodHandler) {
	c.mu.Lock()
	if h == nil {
		delete(c.methodHandlers, name)
	} else {
		c.methodHandlers[name] = h
		if !c.closed && name != "" {
			queued := c.methodInboxes[""].remove(func(r *MethodRequest) bool { return r.Name == name })
			if b, ok := c.methodInboxes[name]; ok {
				queued = append(queued, b.remove(all)...)
			}
			for _, req := range queued {
				c.goLocked(func() { c.runMethod(h, req) })
			}
		}
	}
	c.mu.Unlock()
	c.require(filterMethods, qosMethods)
}

// SetDefaultMethodHandler registers h for methods that have no handler of
// their own and no ReceiveMethodRequest waiting by name (Python's
// on_method_request_received). h first gets the requests of that kind that
// arrived while no default handler was set and that no
// ReceiveMethodRequest(ctx, "") call took; while it is set, those calls
// wait. nil removes it.
func (c *Client) SetDefaultMethodHandler(h MethodHandler) {
	c.mu.Lock()
	c.defaultMethod = h
	if h != nil && !c.closed {
		for _, req := range c.methodInboxes[""].remove(all) {
			c.goLocked(func() { c.runMethod(h, req) })
		}
	}
	c.mu.Unlock()
	c.require(filterMethods, qosMethods)
}

// ReceiveMethodRequest returns the next request for the method called name,
// or for any method no handler took when name is "" (Python's
// receive_method_request). Answer it with SendMethodResponse. Once called
// with a name, requests for that name queue for it even between calls; the
// first call also takes over requests for name that arrived earlier and
// are still unclaimed. A handler for the method (HandleMethod) takes
// precedence: while one is registered, the call waits.
func (c *Client) ReceiveMethodRequest(ctx context.Context, name string) (*MethodRequest, error) {
	c.mu.Lock()
	b, ok := c.methodInboxes[name]
	if !ok {
		b = newInbox[*MethodRequest]()
		c.methodInboxes[name] = b
		// Requests for name that came before this inbox existed.
		for _, req := range c.methodInboxes[""].remove(func(r *MethodRequest) bool { return r.Name == name }) {
			b.put(req)
		}
	}
	c.mu.Unlock()
	c.require(filterMethods, qosMethods)
	req, err := b.take(ctx, c.ctx.Done())
	if err != nil {
		return nil, fmt.Errorf("device: receive method request: %w", err)
	}
	return req, nil
}

// SendMethodResponse publishes resp on $iothub/methods/res/{status}/?$rid={rid}
// (QoS 0). While the client is reconnecting it waits for the new connection
// (a request can arrive on a connection that is still being set up); it does
// not re-send after a drop, since the hub has failed the invocation by then.
// Without a connection or reconnect in progress it returns ErrNotConnected
// at once, as the Node SDK does.
func (c *Client) SendMethodResponse(ctx context.Context, resp *MethodResponse) error {
	if resp == nil || resp.RequestID == "" {
		return errors.New("device: method response needs a request id")
	}
	body, err := json.Marshal(resp.Payload)
	if err != nil {
		return fmt.Errorf("device: method response payload: %w", err)
	}
	if len(body) > MaxMethodPayloadSize {
		return fmt.Errorf("%w: method response of %d bytes, limit %d", ErrMessageTooLarge, len(body), MaxMethodPayloadSize)
	}
	s, err := c.current(ctx)
	if err != nil {
		return fmt.Errorf("device: method response: %w", err)
	}
	if err := s.wait(ctx, s.pc.Publish(methodResponseTopic(resp.Status, resp.RequestID), 0, false, body)); err != nil {
		return fmt.Errorf("device: method response: %w", err)
	}
	return nil
}

// onMethodRequest routes a request: its own handler, else a receiver
// waiting for its name, else the default handler, else the catch-all inbox.
func (c *Client) onMethodRequest(in inbound, payload []byte) {
	req := &MethodRequest{Name: in.method, RequestID: in.rid, Payload: methodPayload(payload)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if h := c.methodHandlers[req.Name]; h != nil {
		c.goLocked(func() { c.runMethod(h, req) })
		return
	}
	if b, ok := c.methodInboxes[req.Name]; ok && req.Name != "" {
		b.put(req)
		return
	}
	if h := c.defaultMethod; h != nil {
		c.goLocked(func() { c.runMethod(h, req) })
		return
	}
	c.methodInboxes[""].put(req)
}

// methodPayload turns the request body into JSON for the handler. The hub
// sends an empty body for a null or absent payload (protocol reference §3.9);
// newer Python SDKs read that as None, so it becomes null here. A body that
// is not JSON is passed on as a JSON string rather than dropped.
func methodPayload(body []byte) json.RawMessage {
	switch {
	case len(body) == 0:
		return json.RawMessage("null")
	case json.Valid(body):
		return json.RawMessage(body)
	}
	s, _ := json.Marshal(string(body))
	return s
}

func (c *Client) runMethod(h MethodHandler, req *MethodRequest) {
	status, payload := h(c.ctx, req)
	body, err := json.Marshal(payload)
	if err == nil && len(body) > MaxMethodPayloadSize {
		err = fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(body), MaxMethodPayloadSize)
	}
	if err != nil {
		// The handler's payload cannot be sent; tell the caller why.
		c.log.Warn("method payload not sendable", "method", req.Name, "error", err)
		status = 500
		body, _ = json.Marshal(map[string]string{"message": "device: method payload: " + err.Error()})
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.set.connectTimeout)
	defer cancel()
	if err := c.SendMethodResponse(ctx, NewMethodResponse(req, status, json.RawMessage(body))); err != nil {
		c.log.Warn("method response not sent", "method", req.Name, "rid", req.RequestID, "error", err)
	}
}
