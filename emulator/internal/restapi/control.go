// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// The emulator-only control surface. Everything here is documented as
// emulator-only in the README and is never needed by code that targets the
// real hub.

func (s *server) caPEMRoute(w http.ResponseWriter, r *http.Request) error {
	if len(s.caPEM) == 0 {
		return huberr.InvalidOperation("This emulator runs with a user-supplied certificate and has no CA to serve.")
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(s.caPEM)
	return responseLost(err)
}

// metricsRoute serves the Prometheus metrics.
func (s *server) metricsRoute(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return huberr.InvalidOperation("This emulator serves no metrics.")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

// eventHub describes the Event Hub-compatible endpoint: where the Event
// Hubs SDKs read the telemetry this hub records.
func (s *server) eventHub(w http.ResponseWriter, r *http.Request) error {
	if s.eventHubInfo == nil {
		return huberr.InvalidOperation("This emulator serves no Event Hub-compatible endpoint (its AMQP listeners are off).")
	}
	return writeJSON(w, http.StatusOK, s.eventHubInfo())
}

func (s *server) reset(w http.ResponseWriter, r *http.Request) error {
	if err := s.hub.Reset(r.Context()); err != nil {
		return err
	}
	if s.dps != nil {
		if err := s.dps.Reset(); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxWait bounds the long poll of GET /emulator/messages.
const maxWait = 60 * time.Second

func (s *server) messages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return huberr.ArgumentInvalid("since must be a sequence number; got '%s'.", v)
		}
		since = n
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return huberr.ArgumentInvalid("limit must be a non-negative integer; got '%s'.", v)
		}
		limit = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := strconv.ParseFloat(v, 64)
		if err != nil || !(d >= 0) { // also NaN
			return huberr.ArgumentInvalid("wait must be a number of seconds; got '%s'.", v)
		}
		// Clamped before the conversion, which overflows for large values.
		wait = time.Duration(min(d, maxWait.Seconds()) * float64(time.Second))
	}
	extendWrite(w, wait)
	ms, err := s.hub.WaitTelemetry(r.Context(), q.Get("deviceId"), q.Get("moduleId"), since, limit, wait)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []*hub.Message{}
	}
	return writeJSON(w, http.StatusOK, ms)
}

// messagesHead answers {"sequenceNumber": N}, the newest recorded
// message's sequence number: a reader that starts there sees only new
// messages, as `az iot hub monitor-events` does.
func (s *server) messagesHead(w http.ResponseWriter, r *http.Request) error {
	n, err := s.hub.TelemetryHead()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]uint64{"sequenceNumber": n})
}

// sendC2D queues a cloud-to-device message. The body is the payload; the
// same headers as the device HTTPS API carry its properties (iothub-app-*,
// iothub-messageid, iothub-correlationid, iothub-userid, iothub-ack,
// iothub-contenttype, iothub-contentencoding) and iothub-ttl its time to
// live in seconds.
func (s *server) sendC2D(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	m := &hub.C2DMessage{Body: body, Properties: map[string]string{}}
	var ttl time.Duration
	for name, vals := range r.Header {
		v := vals[0]
		switch n := strings.ToLower(name); n {
		case "iothub-messageid":
			m.MessageID = v
		case "iothub-correlationid":
			m.CorrelationID = v
		case "iothub-userid":
			m.UserID = v
		case "iothub-ack":
			m.Ack = v
		case "iothub-contenttype":
			m.ContentType = v
		case "iothub-contentencoding":
			m.ContentEncoding = v
		case "iothub-ttl":
			if ttl, err = seconds(v, hub.MaxC2DTTL); err != nil {
				return huberr.ArgumentInvalid("iothub-ttl must be a positive number of seconds, at most %d; got '%s'.", int64(hub.MaxC2DTTL/time.Second), v)
			}
		default:
			if app, ok := strings.CutPrefix(n, appPrefix); ok && app != "" {
				m.Properties[app] = v
			}
		}
	}
	out, err := s.hub.SendC2D(r.Context(), id, m, ttl)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) pendingC2D(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	ms, err := s.hub.PendingC2D(id)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []*hub.C2DMessage{}
	}
	return writeJSON(w, http.StatusOK, ms)
}

func (s *server) feedback(w http.ResponseWriter, r *http.Request) error {
	fb, err := s.hub.Feedback()
	if err != nil {
		return err
	}
	if fb == nil {
		fb = []hub.Feedback{}
	}
	return writeJSON(w, http.StatusOK, fb)
}

func (s *server) methodCalls(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.hub.MethodCalls(r.URL.Query().Get("deviceId")))
}

func (s *server) twinHistory(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.hub.TwinHistory(id.DeviceID, id.ModuleID))
}

// seconds reads a positive whole number of seconds of at most max. The
// range is checked on the number: converted first, a large one wraps
// around to a duration that looks valid.
func seconds(v string, max time.Duration) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > int64(max/time.Second) {
		return 0, errors.New("out of range")
	}
	return time.Duration(n) * time.Second, nil
}

// faultRequest is the body of POST /emulator/faults: the hook's fault, in
// the hook's units (seconds).
type faultRequest struct {
	DeviceID    string   `json:"deviceId"`
	ModuleID    string   `json:"moduleId"`
	FaultType   string   `json:"faultType"`
	CloseReason string   `json:"closeReason"`
	Delay       *float64 `json:"delayInSecs"`
	Duration    *float64 `json:"durationInSecs"`
}

func (s *server) injectFault(w http.ResponseWriter, r *http.Request) error {
	var req faultRequest
	if err := readStrictJSON(r, &req); err != nil {
		return err
	}
	delay, err := faultSeconds("delayInSecs", req.Delay)
	if err != nil {
		return err
	}
	duration, err := faultSeconds("durationInSecs", req.Duration)
	if err != nil {
		return err
	}
	rec, err := s.hub.InjectFault(r.Context(), hub.FaultSpec{
		Identity: hub.Identity{DeviceID: req.DeviceID, ModuleID: req.ModuleID},
		Kind:     hub.FaultKind(req.FaultType), CloseReason: req.CloseReason, Delay: delay, Duration: duration,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}

// faultSeconds reads an optional number of seconds of the fault routes;
// the range is checked on the number, before a conversion that could wrap.
func faultSeconds(name string, v *float64) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if !(*v >= 0) || *v > hub.MaxFaultTime.Seconds() {
		return 0, huberr.ArgumentInvalid("%s must be a number of seconds between 0 and %d; got %v.", name, int64(hub.MaxFaultTime/time.Second), *v)
	}
	return time.Duration(*v * float64(time.Second)), nil
}

func (s *server) faults(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.hub.Faults(r.URL.Query().Get("deviceId")))
}

// errNoThrottle answers the throttle routes of a handler built without one.
func errNoThrottle() error {
	return huberr.InvalidOperation("This server has no throttling switch.")
}

func (s *server) getThrottle(w http.ResponseWriter, _ *http.Request) error {
	if s.throttler == nil {
		return errNoThrottle()
	}
	return writeJSON(w, http.StatusOK, s.throttler.Throttle())
}

func (s *server) setThrottle(w http.ResponseWriter, r *http.Request) error {
	if s.throttler == nil {
		return errNoThrottle()
	}
	var t ThrottleSettings
	if err := readStrictJSON(r, &t); err != nil {
		return err
	}
	if err := s.throttler.SetThrottle(t); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.throttler.Throttle())
}

func (s *server) deleteThrottle(w http.ResponseWriter, _ *http.Request) error {
	if s.throttler == nil {
		return errNoThrottle()
	}
	if err := s.throttler.SetThrottle(ThrottleSettings{}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readStrictJSON decodes one JSON object into v, refusing members v does
// not have: a misspelt setting of a test-control route must not pass for
// its default.
func readStrictJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		return huberr.ArgumentInvalid("The request body is not valid JSON for this operation: %v", err)
	}
	if dec.More() {
		return huberr.ArgumentInvalid("The request body holds more than one JSON value.")
	}
	return nil
}
