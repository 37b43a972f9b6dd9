// SPDX-License-Identifier: MIT

package service_test

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/iothubemulator/iothub/service"
)

// exampleHub is a tiny in-memory stand-in for a hub so that the examples
// run without network access: devices, twin tags and desired properties
// (top-level merge), an "echo" direct method on connected devices, and
// SELECT * queries. It answers with the hub's shapes and error forms.
type exampleHub struct {
	mu      sync.Mutex
	devices map[string]*service.Device
	tags    map[string]map[string]any
	desired map[string]map[string]any
}

// startExampleHub returns the connection string of a running example hub,
// the option that makes a client trust it, and a function to stop it.
func startExampleHub() (string, service.Option, func()) {
	h := &exampleHub{devices: map[string]*service.Device{}, tags: map[string]map[string]any{}, desired: map[string]map[string]any{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(h.serve))
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cs := "HostName=" + strings.TrimPrefix(srv.URL, "https://") +
		";SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleS1mb3ItdGhlLWV4YW1wbGVz"
	return cs, service.WithRootCAs(pool), srv.Close
}

func (h *exampleHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/devices/query":
		var twins []map[string]any
		for _, id := range slices.Sorted(maps.Keys(h.devices)) {
			twins = append(twins, h.twin(id))
		}
		w.Header().Set("x-ms-item-type", "Twin")
		writeJSON(w, 200, twins)
	case r.Method == http.MethodPut && len(parts) == 2 && parts[0] == "devices":
		if _, ok := h.devices[parts[1]]; ok && r.Header.Get("If-Match") == "" {
			writeJSON(w, 409, map[string]string{"Message": "ErrorCode:DeviceAlreadyExists;A device with ID '" + parts[1] + "' is already registered.", "ExceptionMessage": ""})
			return
		}
		var d service.Device
		json.Unmarshal(body, &d)
		d.ETag, d.Status, d.ConnectionState = "MQ==", service.StatusEnabled, service.Disconnected
		if d.Authentication.SymmetricKey != nil && d.Authentication.SymmetricKey.PrimaryKey == "" {
			d.Authentication.SymmetricKey = &service.SymmetricKey{PrimaryKey: "cHJpbWFyeS1rZXk=", SecondaryKey: "c2Vjb25kYXJ5LWtleQ=="}
		}
		h.devices[d.DeviceID] = &d
		writeJSON(w, 200, &d)
	case len(parts) == 2 && parts[0] == "devices" && h.devices[parts[1]] == nil,
		len(parts) >= 2 && parts[0] == "twins" && h.devices[parts[1]] == nil && !strings.HasSuffix(r.URL.Path, "/methods"):
		writeJSON(w, 404, map[string]string{"Message": "ErrorCode:DeviceNotFound;Device " + parts[1] + " is not registered.", "ExceptionMessage": ""})
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "devices":
		writeJSON(w, 200, h.devices[parts[1]])
	case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "devices":
		delete(h.devices, parts[1])
		w.WriteHeader(204)
	case r.Method == http.MethodPatch && len(parts) == 2 && parts[0] == "twins":
		var patch struct {
			Tags       map[string]any `json:"tags"`
			Properties struct {
				Desired map[string]any `json:"desired"`
			} `json:"properties"`
		}
		json.Unmarshal(body, &patch)
		h.tags[parts[1]] = merge(h.tags[parts[1]], patch.Tags)
		h.desired[parts[1]] = merge(h.desired[parts[1]], patch.Properties.Desired)
		writeJSON(w, 200, h.twin(parts[1]))
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "twins":
		writeJSON(w, 200, h.twin(parts[1]))
	case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "methods":
		var req struct {
			Payload json.RawMessage `json:"payload"`
		}
		json.Unmarshal(body, &req)
		if d := h.devices[parts[1]]; d == nil || d.ConnectionState != service.Connected {
			inner, _ := json.Marshal(map[string]any{"errorCode": 404103, "trackingId": "x", "message": "Timed out waiting for device to connect.", "info": map[string]string{"timeout": "00:00:00"}})
			writeJSON(w, 404, map[string]string{"Message": string(inner), "ExceptionMessage": ""})
			return
		}
		writeJSON(w, 200, map[string]any{"status": 200, "payload": map[string]json.RawMessage{"echo": req.Payload}})
	default:
		writeJSON(w, 400, map[string]string{"Message": "ErrorCode:InvalidOperation;not supported by the example hub", "ExceptionMessage": ""})
	}
}

func (h *exampleHub) twin(id string) map[string]any {
	return map[string]any{
		"deviceId": id, "etag": "AAAAAAAAAAE=", "version": 2, "status": "enabled",
		"tags":       h.tags[id],
		"properties": map[string]any{"desired": merge(map[string]any{"$version": 1}, h.desired[id]), "reported": map[string]any{"$version": 1}},
	}
}

// merge applies a top-level patch: null deletes a member.
func merge(dst, patch map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
