// SPDX-License-Identifier: MIT

package dps

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParseRegistrationRequest feeds register bodies, as devices send them
// over MQTT and HTTPS, to the parser: it never panics, accepts only JSON
// objects naming the same registration, and what it accepts carries a
// payload that is valid JSON. Errors are DPS 400s or the 413.
func FuzzParseRegistrationRequest(f *testing.F) {
	for _, seed := range []struct{ id, body string }{
		{"dev-1", `{"registrationId":"dev-1"}`},
		{"dev-1", `{"registrationId":"dev-1","payload":{"modelId":"dtmi:x;1"}}`},
		{"dev-1", `{"registrationId":"DEV-1","payload":"text"}`},
		{"dev-1", `{"payload":null}`},
		{"dev-1", ``},
		{"dev-1", ` `},
		{"dev-1", `{"registrationId":"dev-2"}`},
		{"dev-1", `{"registrationId":"dev-1","tpm":{"endorsementKey":"AA=="}}`},
		{"dev-1", `{"registrationId":"dev-1","clientCertificateCsr":"MII"}`},
		{"dev-1", `[1,2]`},
		{"dev-1", `{"registrationId":1}`},
		{"dev-1", `{"registrationId":"dev-1","payload":`},
		{"a", "{\"registrationId\":\"a\",\"payload\":{\"\\u0000\":[]}}"},
	} {
		f.Add(seed.id, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		req, err := ParseRegistrationRequest(id, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 413) {
				t.Fatalf("error %v is not a DPS 400 or 413", err)
			}
			return
		}
		if req.RegistrationID != id {
			t.Fatalf("registration id %q, want %q", req.RegistrationID, id)
		}
		if req.Payload != nil && !json.Valid(req.Payload) {
			t.Fatalf("accepted payload %q is not JSON", req.Payload)
		}
		if t := strings.TrimSpace(string(body)); t != "" && t[0] != '{' {
			panic("accepted a body that is not an object: " + t)
		}
	})
}
