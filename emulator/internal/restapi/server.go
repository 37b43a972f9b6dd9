// SPDX-License-Identifier: MIT

package restapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

type server struct {
	hub          *hub.Hub
	ready        func() bool
	caPEM        []byte
	writeTimeout time.Duration // see deadlines.go
	bodyTimeout  time.Duration
	dps          *dps.Service // nil: the provisioning routes are not served
	eventHubInfo func() EventHubEndpoint
	throttler    Throttler    // nil: /emulator/throttle answers 400
	metrics      http.Handler // nil: /metrics is not served
}

// maxBody bounds request bodies; the largest legitimate one is a bulk
// registry request of 100 devices or a 128 KB method payload.
const maxBody = 4 << 20

// apiVersion accepts YYYY-MM-DD with an optional -preview suffix
// (iothub-protocol.md §6.1, §11 item 9).
var apiVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

// pipeline wraps a route's handler in the order every request takes:
// tracking id -> api-version check -> authentication and rights -> handler
// -> error mapping. The api-version check comes first because the hub
// rejects a request without one before it looks at credentials.
func (s *server) pipeline(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracking := newTrackingID()
		w.Header().Set("iothub-tracking-id", tracking)
		fail := func(err error) {
			if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
				// The client went away (a cancelled long-poll, a closed
				// connection): nothing failed here, and no one is left to
				// answer.
				s.hub.Logger().Debug("request cancelled by the client", "method", r.Method, "path", r.URL.Path)
				return
			}
			var lost errResponseLost
			if errors.As(err, &lost) {
				// Part of the answer may be on the wire: an error body now
				// would only corrupt it, and the peer is gone anyway.
				s.hub.Logger().Debug("response not delivered", "method", r.Method, "path", r.URL.Path, "err", lost.err)
				return
			}
			he := huberr.As(err)
			if he.Status >= 500 {
				s.hub.Logger().Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, he, tracking, s.hub.Now())
		}
		if rt.kind == serviceRoute || rt.kind == deviceRoute {
			if v := r.URL.Query().Get("api-version"); !apiVersion.MatchString(v) {
				fail(huberr.InvalidProtocolVersion())
				return
			}
		}
		var err error
		switch rt.kind {
		case serviceRoute:
			_, err = s.hub.AuthorizeServiceAny(r.Header.Get("Authorization"), rt.rights)
		case controlRoute:
			// The control surface needs every right, i.e. the owner policy.
			_, err = s.hub.AuthorizeService(r.Header.Get("Authorization"), rt.rights)
		case deviceRoute:
			err = s.authorizeDevice(r)
		}
		if err != nil {
			fail(err)
			return
		}
		s.setDeadlines(w, r)
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := rt.handler(s, w, r); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = huberr.MessageTooLarge("The request body is larger than %d bytes.", maxBody)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = bodyTimedOut(s.bodyTimeout)
			}
			fail(err)
		}
	})
}

func newTrackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// vars returns the route variable, unescaped.
func pathVar(r *http.Request, name string) (string, error) {
	raw := mux.Vars(r)[name]
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", huberr.ArgumentInvalid("The path segment '%s' is not validly escaped.", raw)
	}
	return v, nil
}

// routeVar returns a route variable as matched (escaped) and whether the
// route has it.
func routeVar(r *http.Request, name string) (string, bool) {
	v, ok := mux.Vars(r)[name]
	return v, ok
}

func identityOf(r *http.Request) (hub.Identity, error) {
	id, err := pathVar(r, "id")
	if err != nil {
		return hub.Identity{}, err
	}
	mid := ""
	if _, ok := mux.Vars(r)["mid"]; ok {
		if mid, err = pathVar(r, "mid"); err != nil {
			return hub.Identity{}, err
		}
	}
	return hub.Identity{DeviceID: id, ModuleID: mid}, nil
}

// readJSON decodes the body into v; a malformed body is 400 ArgumentInvalid.
func readJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return huberr.ArgumentInvalid("The request body is not valid JSON for this operation: %v", err)
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, huberr.ArgumentNull("The request body must not be empty.")
	}
	if !json.Valid(b) {
		return nil, huberr.ArgumentInvalid("The request body is not valid JSON.")
	}
	return b, nil
}

// errResponseLost is a failure to write a response the handler had begun:
// the client went away or its connection broke. Nothing failed in the hub,
// and there is no one to tell.
type errResponseLost struct{ err error }

func (e errResponseLost) Error() string { return "writing the response: " + e.err.Error() }
func (e errResponseLost) Unwrap() error { return e.err }

// responseLost marks err, from writing a response body, as errResponseLost.
func responseLost(err error) error {
	if err == nil {
		return nil
	}
	return errResponseLost{err}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case json.RawMessage:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(b)
	return responseLost(err)
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil && !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok\n")
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	e := huberr.InvalidOperation("The route %s %s does not exist on this hub (or is not implemented by the emulator).", r.Method, r.URL.EscapedPath())
	e.Status = http.StatusNotFound
	writeError(w, e, newTrackingID(), s.hub.Now())
}

func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	e := huberr.InvalidOperation("The method %s is not supported on %s.", r.Method, r.URL.EscapedPath())
	e.Status = http.StatusMethodNotAllowed
	writeError(w, e, newTrackingID(), s.hub.Now())
}
