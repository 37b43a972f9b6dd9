// SPDX-License-Identifier: MIT

package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/iothubemulator/iothub/internal/uuid"
)

// Properties is one section of a twin (desired or reported) or a desired
// patch, as decoded JSON. The hub's "$version" member is kept; Version
// reads it.
type Properties map[string]any

// Version returns the "$version" member, or 0 when it is absent or not a
// number.
func (p Properties) Version() int64 {
	switch v := p["$version"].(type) {
	case float64:
		return int64(v)
	case json.Number:
		n, _ := v.Int64()
		return n
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

// Twin is the device's view of its twin: the desired and reported sections
// only (the hub sends no tags or metadata over MQTT).
type Twin struct {
	Desired  Properties      `json:"desired"`
	Reported Properties      `json:"reported"`
	Raw      json.RawMessage `json:"-"` // the document as received
}

// DesiredHandler receives desired-property patches. patch holds the changed
// members (null means deleted) and "$version"; version repeats it.
type DesiredHandler func(patch Properties, version int64)

// twinResponse is a message on $iothub/twin/res/{status}/?$rid=...
type twinResponse struct {
	status     int
	version    int64
	hasVersion bool
	body       []byte
}

// GetTwin requests the twin ($iothub/twin/GET/?$rid=..., body " " as the
// Node SDK sends it) after making sure $iothub/twin/res/# is subscribed.
func (c *Client) GetTwin(ctx context.Context) (*Twin, error) {
	resp, err := c.twinRequest(ctx, "GetTwin", "GET", "/", []byte(" "))
	if err != nil {
		return nil, wrapOp("get twin", err)
	}
	t := &Twin{Raw: json.RawMessage(resp.body)}
	if err := json.Unmarshal(resp.body, t); err != nil {
		return nil, fmt.Errorf("device: get twin: malformed twin: %w", err)
	}
	if t.Desired == nil {
		t.Desired = Properties{}
	}
	if t.Reported == nil {
		t.Reported = Properties{}
	}
	return t, nil
}

// UpdateReportedProperties merges patch, which must marshal to a JSON
// object, into the reported properties (null members delete) and returns the
// new reported $version. Pass json.RawMessage for ready-made JSON.
func (c *Client) UpdateReportedProperties(ctx context.Context, patch any) (int64, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return 0, fmt.Errorf("device: update reported properties: %w", err)
	}
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return 0, errors.New("device: update reported properties: patch is not a JSON object")
	}
	resp, err := c.twinRequest(ctx, "UpdateReportedProperties", "PATCH", "/properties/reported/", body)
	if err != nil {
		return 0, wrapOp("update reported properties", err)
	}
	if !resp.hasVersion {
		return 0, errors.New("device: update reported properties: response has no $version")
	}
	return resp.version, nil
}

// OnDesiredPropertiesUpdate registers h for desired-property patches and
// subscribes to $iothub/twin/PATCH/properties/desired/# (QoS 0). Patches are
// handed over one at a time, in arrival order, starting with those that
// arrived while no handler was set and that no ReceiveDesiredPatch call
// took (the hub keeps subscriptions between connections, so a patch can
// arrive before the handler is set). While a handler is set it gets every
// patch and ReceiveDesiredPatch calls wait. The hub does not queue
// patches for a disconnected device: after a reconnect, call GetTwin and
// ignore patches whose version is not above the twin's desired $version.
// nil removes the handler; later patches then queue for
// ReceiveDesiredPatch.
func (c *Client) OnDesiredPropertiesUpdate(h DesiredHandler) {
	c.mu.Lock()
	c.desiredHandler = h
	if h != nil && !c.closed {
		// Under c.mu, so these go before any patch dispatched later.
		for _, p := range c.desiredInbox.remove(all) {
			c.desiredQ.push(c, func() { h(p, p.Version()) })
		}
	}
	c.mu.Unlock()
	c.require(filterDesired, qosTwin)
}

// ReceiveDesiredPatch returns the next desired-property patch that no
// handler took (Python's receive_twin_desired_properties_patch),
// subscribing on first use; while a handler is set it waits.
func (c *Client) ReceiveDesiredPatch(ctx context.Context) (Properties, error) {
	c.require(filterDesired, qosTwin)
	p, err := c.desiredInbox.take(ctx, c.ctx.Done())
	if err != nil {
		return nil, fmt.Errorf("device: receive desired patch: %w", err)
	}
	return p, nil
}

func (c *Client) onDesired(in inbound, payload []byte) {
	var patch Properties
	if err := json.Unmarshal(payload, &patch); err != nil || patch == nil {
		c.log.Warn("ignoring malformed desired-properties patch", "error", err)
		return
	}
	version := patch.Version()
	if _, ok := patch["$version"]; !ok && in.hasVersion {
		version = in.version
		patch["$version"] = float64(version)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if h := c.desiredHandler; h != nil {
		c.desiredQ.push(c, func() { h(patch, version) })
		return
	}
	c.desiredInbox.put(patch)
}

// twinRequest publishes a twin request (QoS 0, correlated only by $rid) and
// waits for its response. If the connection drops first, the request is sent
// again, with a new $rid, once reconnected; GET is idempotent and a reported
// patch is a merge, so a repeat is harmless.
func (c *Client) twinRequest(ctx context.Context, op, verb, resource string, body []byte) (twinResponse, error) {
	ctx, cancel := c.withOpTimeout(ctx)
	defer cancel()
	for {
		s, err := c.current(ctx)
		if err != nil {
			return twinResponse{}, err
		}
		// The response is lost unless $iothub/twin/res/# is subscribed
		// first (Node mqtt_twin_client.ts waits for the SUBACK).
		c.require(filterTwinRes, qosTwin)
		if err := s.subscribe(ctx, s.missing(map[string]byte{filterTwinRes: qosTwin})); err != nil {
			if err := awaitRetry(ctx, s); err != nil {
				return twinResponse{}, err
			}
			continue
		}
		rid := uuid.New()
		ch := c.expectTwin(rid)
		resp, err := c.exchangeTwin(ctx, s, twinRequestTopic(verb, resource, rid), body, ch)
		c.forgetTwin(rid)
		if err == nil {
			if resp.status < 200 || resp.status > 299 {
				return resp, twinError(op, rid, resp.status, resp.body)
			}
			return resp, nil
		}
		if err := awaitRetry(ctx, s); err != nil {
			return twinResponse{}, err
		}
	}
}

// exchangeTwin publishes one request and waits for the response on ch.
func (c *Client) exchangeTwin(ctx context.Context, s *session, topic string, body []byte, ch chan twinResponse) (twinResponse, error) {
	tok := s.pc.Publish(topic, qosTwin, false, body)
	sent := tok.Done()
	for {
		select {
		case resp := <-ch:
			return resp, nil
		case <-sent:
			if err := tok.Error(); err != nil {
				return twinResponse{}, err
			}
			sent = nil
		case <-s.lost:
			return twinResponse{}, s.lostErr()
		case <-ctx.Done():
			return twinResponse{}, context.Cause(ctx)
		}
	}
}

func (c *Client) expectTwin(rid string) chan twinResponse {
	ch := make(chan twinResponse, 1)
	c.twinMu.Lock()
	c.twinWait[rid] = ch
	c.twinMu.Unlock()
	return ch
}

func (c *Client) forgetTwin(rid string) {
	c.twinMu.Lock()
	delete(c.twinWait, rid)
	c.twinMu.Unlock()
}

func (c *Client) onTwinResponse(in inbound, payload []byte) {
	c.twinMu.Lock()
	ch, ok := c.twinWait[in.rid]
	delete(c.twinWait, in.rid)
	c.twinMu.Unlock()
	if !ok {
		c.log.Debug("twin response for an unknown request", "rid", in.rid, "status", in.status)
		return
	}
	ch <- twinResponse{status: in.status, version: in.version, hasVersion: in.hasVersion, body: payload}
}
