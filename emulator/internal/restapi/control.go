// SPDX-License-Identifier: MIT

package restapi

import (
	"errors"
	"io"
	"net/http"
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
	return err
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
