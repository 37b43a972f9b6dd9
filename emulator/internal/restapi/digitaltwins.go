// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// The digital twin routes (REST reference "Digital Twin"; Node azure-iothub
// dist/pl/operations/digitalTwin.js): GET answers the document with its
// etag in the ETag header; PATCH answers 202 with the new ETag and a
// Location; a command answers 200 with the device's payload as the body
// and the device's status in x-ms-command-statuscode, next to
// x-ms-request-id (both read by the C# DigitalTwinsClient).

func (s *server) getDigitalTwin(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	dt, err := s.hub.GetDigitalTwin(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(dt.ETag))
	return writeJSON(w, http.StatusOK, dt.Body)
}

func (s *server) updateDigitalTwin(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	etag, err := s.hub.UpdateDigitalTwin(r.Context(), id, body, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", strconv.Quote(etag))
	h.Set("Location", "https://"+s.hub.HostName()+"/digitaltwins/"+url.PathEscape(id))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *server) invokeCommand(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	req := hub.CommandRequest{ResponseTimeout: hub.DefaultResponseTimeout}
	if req.Command, err = pathVar(r, "command"); err != nil {
		return err
	}
	if _, ok := mux.Vars(r)["component"]; ok {
		if req.Component, err = pathVar(r, "component"); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{"responseTimeoutInSeconds", &req.ResponseTimeout}, {"connectTimeoutInSeconds", &req.ConnectTimeout}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			e := huberr.ArgumentInvalid("%s must be a whole number of seconds; got '%s'.", p.name, v)
			e.Form = huberr.FormB
			return e
		}
		*p.dst = time.Duration(n) * time.Second
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(payload))) == 0 {
		payload = nil
	} else if !json.Valid(payload) {
		e := huberr.ArgumentInvalid("The command payload is not valid JSON.")
		e.Form = huberr.FormB
		return e
	}
	req.Payload = payload
	res, err := s.hub.InvokeCommand(r.Context(), id, req)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("x-ms-command-statuscode", strconv.Itoa(res.Status))
	h.Set("x-ms-request-id", res.RequestID)
	return writeJSON(w, http.StatusOK, res.Payload)
}
