// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/uuid"
	"github.com/iothubemulator/iothub/internal/wire"
)

// call describes one REST operation.
type call struct {
	op         string        // operation name for logs and errors, e.g. "GetDevice"
	method     string        // HTTP method
	path       string        // escaped path starting with "/", without query
	query      string        // extra query parameters, already escaped, without '&' or '?'
	header     http.Header   // extra request headers (If-Match, x-ms-...)
	body       any           // encoded as JSON when non-nil, unless it is a rawBody
	idempotent bool          // safe to send again after a failure (see RetryPolicy)
	timeout    time.Duration // limit for each attempt; 0 leaves it to ctx
	// goneCode, for a delete, is the 404 code saying the target does not
	// exist: after an attempt that may have deleted it, that is success.
	goneCode int
}

// conditional reports whether cl carries an If-Match with a specific etag.
// Once such a write has taken effect the etag has changed, so a repeat
// fails with 412 (or 404 for a delete) and would hide the success.
func (cl *call) conditional() bool {
	v := cl.header.Get("If-Match")
	return v != "" && v != `"*"`
}

// rawBody is a call body sent as is rather than encoded as JSON, such as
// the payload of a cloud-to-device message.
type rawBody struct {
	data        []byte
	contentType string
}

// maxResponseBody bounds a success body: a 1000-device list or a query page
// of large twins stays well below it.
const maxResponseBody = 64 << 20

// caOption is the advice of a certificate error: how a user of this client
// trusts the emulator's CA.
const caOption = "trust its CA with service.WithRootCAs (the iothub CLI and the sample apps read IOTHUB_CA_FILE)"

// jsonContentType is the request Content-Type every SDK sends with a body
// (azure-iothub dist/registry.js and device_method.js).
const jsonContentType = "application/json; charset=utf-8"

// do runs cl, retrying as the policy allows, and decodes a successful JSON
// body into out (when out is non-nil). It returns the response headers of
// the successful attempt.
func (c *Client) do(ctx context.Context, cl *call, out any) (http.Header, error) {
	var payload []byte
	contentType := jsonContentType
	switch b := cl.body.(type) {
	case nil:
	case rawBody:
		// An empty payload still goes out as a body (Content-Length: 0)
		// so that the request says what it carries.
		payload, contentType = b.data, b.contentType
		if payload == nil {
			payload = []byte{}
		}
	default:
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return nil, errorf(cl.op, "encoding request: %w", err)
		}
	}
	var mayHaveApplied bool // an earlier attempt may have taken effect
	for attempt := 1; ; attempt++ {
		header, body, err := c.attempt(ctx, cl, payload, contentType, attempt)
		if err == nil {
			if out != nil && len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, out); err != nil {
					return header, errorf(cl.op, "decoding response: %w", err)
				}
			}
			return header, nil
		}
		if e := asError(err); mayHaveApplied && cl.goneCode != 0 && e != nil &&
			e.StatusCode == http.StatusNotFound && e.Code == cl.goneCode {
			// The earlier attempt deleted it and its answer was lost.
			c.log.InfoContext(ctx, "iothub: already deleted by an earlier attempt", "op", cl.op, "attempt", attempt)
			return nil, nil
		}
		mayHaveApplied = mayHaveApplied || outcomeUnknown(err)
		if ctx.Err() != nil || !cl.idempotent {
			return nil, err
		}
		wait, ok := c.retryWait(cl, err, header, attempt)
		if !ok {
			return nil, err
		}
		if dl, has := ctx.Deadline(); has && c.now().Add(wait).After(dl) {
			// Waiting would outlive the caller's deadline; report the
			// failure now rather than a less useful deadline error later.
			return nil, err
		}
		c.log.InfoContext(ctx, "iothub: retrying", "op", cl.op, "attempt", attempt, "wait", wait, "error", err)
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("service: %s: %w; last attempt: %w", cl.op, serr, err)
		}
	}
}

// retryWait decides whether a failed attempt of cl is worth repeating and
// how long to wait first: the safety rules here, then the policy, then the
// hub's Retry-After.
func (c *Client) retryWait(cl *call, err error, header http.Header, failures int) (time.Duration, bool) {
	if cl.conditional() && outcomeUnknown(err) {
		// The write may have happened; a repeat would report 412 for it.
		return 0, false
	}
	e := asError(err)
	switch {
	case e != nil && !retryableStatus(e):
		return 0, false
	case e == nil && errors.Is(err, ErrTimeout):
		// The call's own time limit (a direct method's timeouts) ran out.
		return 0, false
	case e == nil && wire.Deterministic(err, c.host):
		// An untrusted certificate, an unknown host name, nothing
		// listening on another machine: a repeat fails the same way.
		return 0, false
	}
	// Otherwise a retryable status, or a network error: the request may or
	// may not have reached the hub, which is fine because only idempotent
	// calls get here.
	wait, ok := c.retry.Delay(failures, err)
	if !ok {
		return 0, false
	}
	if ra, has := retryAfter(header, c.now()); e != nil && has && ra > wait {
		wait = ra
	}
	return wait, true
}

// outcomeUnknown reports whether a failed attempt may nevertheless have
// taken effect: its answer was lost on the way (a network error), or a
// server or gateway error (500, 502, 504) left it open. The hub answers 429
// and 503 before doing anything, and other statuses are refusals.
func outcomeUnknown(err error) bool {
	e := asError(err)
	if e == nil {
		return true
	}
	switch e.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// attempt sends one request. On an HTTP error status it returns the
// response headers together with an *Error.
func (c *Client) attempt(ctx context.Context, cl *call, payload []byte, contentType string, n int) (http.Header, []byte, error) {
	if cl.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cl.timeout, ErrTimeout)
		defer cancel()
	}
	url := "https://" + c.host + cl.path + "?api-version=" + wire.APIVersion
	if cl.query != "" {
		url += "&" + cl.query
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, url, body)
	if err != nil {
		return nil, nil, errorf(cl.op, "%w", err)
	}
	auth, err := c.cred.authorization(c.now())
	if err != nil {
		return nil, nil, err
	}
	requestID := uuid.New()
	for k, v := range cl.header {
		req.Header[k] = v
	}
	// The headers every SDK sends (azure-iothub dist/common-http/rest_api_client.js
	// executeApiCall): Authorization, a fresh Request-Id and User-Agent.
	req.Header.Set("Authorization", auth)
	req.Header.Set("Request-Id", requestID)
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		err = wire.ExplainTLS(errorf(cl.op, "%w", err), c.host, caOption)
		if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
			err = errorf(cl.op, "no answer within %v (%w)", cl.timeout, ErrTimeout)
		}
		c.log.DebugContext(ctx, "iothub: request failed", "op", cl.op, "method", cl.method, "path", cl.path,
			"attempt", n, "requestId", requestID, "error", err)
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	c.log.DebugContext(ctx, "iothub: request", "op", cl.op, "method", cl.method, "path", cl.path,
		"attempt", n, "requestId", requestID, "status", resp.StatusCode, "elapsed", time.Since(start))
	if err != nil {
		return nil, nil, errorf(cl.op, "reading response: %w", err)
	}
	if len(data) > maxResponseBody {
		return nil, nil, errorf(cl.op, "response body exceeds %d bytes", maxResponseBody)
	}
	if resp.StatusCode >= 300 {
		e := parseError(resp.StatusCode, resp.Header, data)
		e.Op, e.RequestID = cl.op, requestID
		return resp.Header, nil, e
	}
	return resp.Header, data, nil
}

// ifMatch formats an etag for the If-Match header. Node always quotes it
// (Registry._ensureQuoted in azure-iothub dist/registry.js), and sends "*"
// for an unconditional write; an empty etag means unconditional here too.
func ifMatch(etag string) http.Header {
	switch {
	case etag == "":
		etag = `"*"`
	case strings.HasPrefix(etag, "W/"), len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"':
	default:
		etag = `"` + etag + `"`
	}
	return http.Header{"If-Match": {etag}}
}
