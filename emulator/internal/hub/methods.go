// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Direct-method limits (iothub-protocol.md §4).
const (
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	MaxConnectTimeout      = 300 * time.Second
	MaxMethodPayload       = 128 * 1024
	maxMethodName          = 100
)

type pendingMethod struct {
	conn   *Conn
	done   chan MethodResult
	failed chan struct{} // the request could not be written
}

// ValidateMethodRequest checks the invocation's arguments with the hub's rules.
func ValidateMethodRequest(r *MethodRequest) error {
	if strings.TrimSpace(r.Name) == "" {
		return formB(huberr.ArgumentInvalid("methodName must not be empty."))
	}
	if len(r.Name) > maxMethodName {
		return formB(huberr.ArgumentInvalid("methodName is %d characters long; the maximum is %d.", len(r.Name), maxMethodName))
	}
	if strings.ContainsAny(r.Name, "/#+") {
		return formB(huberr.ArgumentInvalid("methodName '%s' contains '/', '#' or '+', which method names may not contain.", r.Name))
	}
	if i := strings.IndexFunc(r.Name, isControl); i >= 0 || !utf8.ValidString(r.Name) {
		// The name becomes a segment of the device's MQTT topic, where
		// U+0000 is forbidden and control characters are advised against
		// [MQTT-1.5.3-1] [MQTT-1.5.3-2]; the hub documents printable
		// characters only (iothub-protocol.md §4).
		return formB(huberr.ArgumentInvalid("methodName %q contains a control character or invalid UTF-8, which method names may not contain.", r.Name))
	}
	if r.ResponseTimeout < MinResponseTimeout || r.ResponseTimeout > MaxResponseTimeout {
		return formB(huberr.ArgumentInvalid("responseTimeoutInSeconds must be within [5; 300]."))
	}
	if r.ConnectTimeout < 0 || r.ConnectTimeout > MaxConnectTimeout {
		return formB(huberr.ArgumentInvalid("connectTimeoutInSeconds must be within [0; 300]."))
	}
	if len(r.Payload) > MaxMethodPayload {
		return huberr.MessageTooLarge("The method payload is %d bytes; the maximum is %d.", len(r.Payload), MaxMethodPayload)
	}
	return nil
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// ResponseTimeout converts responseTimeoutInSeconds as a service sent it.
// The range is checked on the number itself: a duration of 18446744079
// seconds wraps around and would pass a check made after the conversion.
func ResponseTimeout(seconds int64) (time.Duration, error) {
	if seconds < int64(MinResponseTimeout/time.Second) || seconds > int64(MaxResponseTimeout/time.Second) {
		return 0, formB(huberr.ArgumentInvalid("responseTimeoutInSeconds must be within [5; 300]."))
	}
	return time.Duration(seconds) * time.Second, nil
}

// ConnectTimeout converts connectTimeoutInSeconds as ResponseTimeout does.
func ConnectTimeout(seconds int64) (time.Duration, error) {
	if seconds < 0 || seconds > int64(MaxConnectTimeout/time.Second) {
		return 0, formB(huberr.ArgumentInvalid("connectTimeoutInSeconds must be within [0; 300]."))
	}
	return time.Duration(seconds) * time.Second, nil
}

func formB(e *huberr.Error) *huberr.Error {
	e.Form = huberr.FormB
	return e
}

// InvokeMethod calls a direct method on a device or module and waits for
// its answer. The device must be registered; it must be connected and
// subscribed to methods now, or within ConnectTimeout.
func (h *Hub) InvokeMethod(ctx context.Context, id Identity, r MethodRequest) (res MethodResult, err error) {
	if err := ValidateMethodRequest(&r); err != nil {
		return MethodResult{}, err
	}
	if err := h.mustExist(id); err != nil {
		return MethodResult{}, err
	}
	start, wall := h.Now(), time.Now()
	defer func() {
		if err == nil {
			h.metrics.MethodCall(strconv.Itoa(res.Status/100)+"xx", time.Since(wall))
		} else {
			code := "error"
			if n := errorCode(err); n != 0 {
				code = strconv.Itoa(n)
			}
			h.metrics.MethodCall(code, time.Since(wall))
		}
		c := MethodCall{DeviceID: id.DeviceID, ModuleID: id.ModuleID, MethodName: r.Name,
			Payload: jsonOrNull(r.Payload), StartTime: start.UTC(), DurationMs: h.Now().Sub(start).Milliseconds()}
		if err == nil {
			c.Status, c.ResponsePayload = res.Status, res.Payload
		} else {
			c.ErrorCode = errorCode(err)
		}
		h.rec.method(c)
	}()
	if err := h.react(ctx, OpInvokeMethod, id); err != nil {
		return MethodResult{}, err
	}
	// The payload goes out as the service sent it: JSON null as the text
	// null, which the Node device SDK parses (its e2e suite invokes with
	// "payload": null); an omitted payload (nil) as an empty body, which is
	// what SDKs that drop a null member cause on the hub (§3.9).
	payload := r.Payload
	connectDeadline := h.clk.NewTimer(r.ConnectTimeout)
	defer connectDeadline.Stop()
	var failed *Conn // a connection the request could not be written to
	for {
		c, err := h.awaitMethodConn(ctx, id, r.ConnectTimeout, connectDeadline.C, failed)
		if err != nil {
			return MethodResult{}, err
		}
		res, err := h.callOn(ctx, c, r, payload)
		if !errors.Is(err, errNotWritten) {
			return res, err
		}
		// The connection went away under us (a takeover, a drop): as
		// within connectTimeout, wait for the device's next connection.
		failed = c
	}
}

// errNotWritten says a method request never reached the device.
var errNotWritten = errors.New("method request not written")

// awaitMethodConn returns the identity's live connection subscribed to
// methods (other than skip), waiting for one until deadline fires. With no
// connect timeout, the device must be ready now.
func (h *Hub) awaitMethodConn(ctx context.Context, id Identity, connectTimeout time.Duration, deadline <-chan time.Time, skip *Conn) (*Conn, error) {
	for {
		h.mu.Lock()
		c := h.conns[id]
		wake := h.subWake
		h.mu.Unlock()
		if c != nil && c != skip && c.methods.Load() && !c.closed.Load() {
			return c, nil
		}
		if connectTimeout == 0 {
			return nil, huberr.DeviceNotOnline(connectTimeout)
		}
		select {
		case <-wake:
		case <-time.After(50 * time.Millisecond): // a skipped connection may be replaced without a new subscription signal
		case <-deadline:
			return nil, huberr.DeviceNotOnline(connectTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// callOn sends one request on c and waits for its answer.
func (h *Hub) callOn(ctx context.Context, c *Conn, r MethodRequest, payload []byte) (MethodResult, error) {
	h.mu.Lock()
	h.ridSeq++
	rid := strconv.FormatUint(h.ridSeq, 10)
	p := &pendingMethod{conn: c, done: make(chan MethodResult, 1), failed: make(chan struct{}, 1)}
	h.pending[rid] = p
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.pending, rid)
		h.mu.Unlock()
	}()
	// The response timeout runs from the moment the request is queued:
	// a device slow to take it uses up its own time.
	timer := h.clk.NewTimer(r.ResponseTimeout)
	defer timer.Stop()
	sent := c.post(func() {
		h.metrics.MessageOut("method")
		if err := c.session.SendMethod(rid, r.Name, payload); err != nil {
			p.fail()
		}
	})
	if !sent {
		return MethodResult{}, errNotWritten
	}
	select {
	case res := <-p.done:
		return res, nil
	case <-p.failed:
		return MethodResult{}, errNotWritten
	case <-timer.C:
		return MethodResult{}, huberr.GatewayTimeout(r.ResponseTimeout)
	case <-ctx.Done():
		return MethodResult{}, ctx.Err()
	}
}

// MethodUndelivered reports that the request rid, written to c, never
// reached the device: the link it went out on ended before the device
// settled it (the device was detaching it, or went away). The invocation
// goes on as for a request that could not be written: on the device's
// next connection within the connect timeout, else DeviceNotOnline,
// rather than waiting out the response timeout for an answer that cannot
// come.
func (c *Conn) MethodUndelivered(rid string) {
	h := c.hub
	h.mu.Lock()
	p := h.pending[rid]
	h.mu.Unlock()
	if p != nil && p.conn == c {
		p.fail()
	}
}

func (p *pendingMethod) fail() {
	select {
	case p.failed <- struct{}{}:
	default: // already failed
	}
}

// ResolveMethod delivers a device's answer to a pending invocation. Answers
// for unknown or late request ids, or from a connection the request was not
// sent to, are dropped: one device cannot answer for another.
func (c *Conn) ResolveMethod(rid string, status int, body []byte) bool {
	h := c.hub
	h.mu.Lock()
	p := h.pending[rid]
	if p == nil || p.conn != c {
		h.mu.Unlock()
		return false
	}
	delete(h.pending, rid)
	h.mu.Unlock()
	p.done <- MethodResult{Status: status, Payload: methodPayload(body)}
	return true
}

// DeviceJSON returns b without the NUL bytes and white space that follow
// its JSON value. The hub's parser accepts a document followed by them, and
// embedded C clients publish fixed-size buffers padded with NULs (§3.9), so
// every adapter passes JSON a device sent through here before parsing it.
func DeviceJSON(b []byte) []byte {
	return bytes.TrimRight(b, "\x00 \t\r\n")
}

func jsonOrNull(b []byte) json.RawMessage {
	if len(bytes.TrimSpace(b)) == 0 {
		return json.RawMessage("null")
	}
	return append(json.RawMessage(nil), b...)
}

func errorCode(err error) int {
	var he *huberr.Error
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

// methodPayload turns a device's answer body into the JSON the service
// gets: empty becomes null; valid JSON (also when padded with NULs) is kept
// as is; anything else is wrapped as a JSON string (iothub-protocol.md §11
// item 6).
func methodPayload(b []byte) []byte {
	t := bytes.TrimSpace(DeviceJSON(b))
	if len(t) == 0 {
		return []byte("null")
	}
	if json.Valid(t) {
		return append([]byte(nil), t...)
	}
	s, _ := json.Marshal(string(b))
	return s
}
