// SPDX-License-Identifier: MIT

package restapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

func (s *server) getTwin(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	tw, err := s.hub.GetTwin(r.Context(), id)
	if err != nil {
		return err
	}
	return writeTwin(w, tw)
}

func (s *server) patchTwin(w http.ResponseWriter, r *http.Request) error {
	return s.updateTwin(w, r, false)
}
func (s *server) putTwin(w http.ResponseWriter, r *http.Request) error {
	return s.updateTwin(w, r, true)
}

func (s *server) updateTwin(w http.ResponseWriter, r *http.Request, replace bool) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	tw, err := s.hub.UpdateTwin(r.Context(), id, body, r.Header.Get("If-Match"), replace)
	if err != nil {
		return err
	}
	return writeTwin(w, tw)
}

// writeTwin sends a twin with its etag also in the ETag header, quoted.
func writeTwin(w http.ResponseWriter, tw *hub.Twin) error {
	if tw.ETag != "" {
		w.Header().Set("ETag", strconv.Quote(tw.ETag))
	}
	return writeJSON(w, http.StatusOK, tw)
}

// methodBody is the direct-method invocation body (iothub-protocol.md §4).
type methodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int64          `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int64          `json:"connectTimeoutInSeconds"`
}

func (s *server) invokeMethod(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	var body methodBody
	if err := readJSON(r, &body); err != nil {
		he := huberr.As(err)
		he.Form = huberr.FormB
		return he
	}
	req := hub.MethodRequest{
		Name:            body.MethodName,
		Payload:         body.Payload,
		ResponseTimeout: hub.DefaultResponseTimeout,
	}
	if body.ResponseTimeoutInSeconds != nil {
		if req.ResponseTimeout, err = hub.ResponseTimeout(*body.ResponseTimeoutInSeconds); err != nil {
			return err
		}
	}
	if body.ConnectTimeoutInSeconds != nil {
		if req.ConnectTimeout, err = hub.ConnectTimeout(*body.ConnectTimeoutInSeconds); err != nil {
			return err
		}
	}
	// The call may wait for the device to connect, then for its answer.
	extendWrite(w, req.ConnectTimeout+req.ResponseTimeout)
	res, err := s.hub.InvokeMethod(r.Context(), id, req)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	out.WriteString(`{"status":`)
	out.WriteString(strconv.Itoa(res.Status))
	out.WriteString(`,"payload":`)
	out.Write(res.Payload)
	out.WriteString(`}`)
	return writeJSON(w, http.StatusOK, out.Bytes())
}
