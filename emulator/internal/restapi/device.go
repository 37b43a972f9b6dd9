// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// authorizeDevice checks the device SAS of a device-facing route against
// the identity in its path. Failures are 401 with the hub's body.
func (s *server) authorizeDevice(r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return huberr.UnauthorizedAccess("Unauthorized")
	}
	if _, err := s.hub.AuthenticateDevice(id, h, nil); err != nil {
		if errors.Is(err, hub.ErrAuth) {
			return huberr.UnauthorizedAccess("Unauthorized")
		}
		return err
	}
	return nil
}

// systemHeaders maps the D2C request headers to message fields
// (iothub-protocol.md §7).
var systemHeaders = map[string]func(*hub.Message, string){
	"iothub-messageid":         func(m *hub.Message, v string) { m.MessageID = v },
	"iothub-correlationid":     func(m *hub.Message, v string) { m.CorrelationID = v },
	"iothub-userid":            func(m *hub.Message, v string) { m.UserID = v },
	"iothub-to":                func(m *hub.Message, v string) { m.To = v },
	"iothub-expiry":            func(m *hub.Message, v string) { m.ExpiryTime = v },
	"iothub-contenttype":       func(m *hub.Message, v string) { m.ContentType = v },
	"iothub-contentencoding":   func(m *hub.Message, v string) { m.ContentEncoding = v },
	"iothub-creation-time-utc": func(m *hub.Message, v string) { m.CreationTime = v },
	"iothub-creationtimeutc":   func(m *hub.Message, v string) { m.CreationTime = v },
	"iothub-messageschema":     func(m *hub.Message, v string) { m.MessageSchema = v },
	"iothub-interface-id":      func(m *hub.Message, v string) { m.InterfaceID = v },
}

const appPrefix = "iothub-app-"

// batchContentType marks a JSON array of messages (C# HttpTransportHandler).
const batchContentType = "application/vnd.microsoft.iothub.json"

func (s *server) deviceSend(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var msgs []*hub.Message
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == batchContentType {
		if msgs, err = parseBatch(body); err != nil {
			return err
		}
	} else {
		m := &hub.Message{Body: body, Properties: map[string]string{}}
		for name, vals := range r.Header {
			// Go canonicalises header names (Iothub-App-Alert); lower-case
			// them, as most clients send them.
			applyProperty(m, strings.ToLower(name), vals[0])
		}
		msgs = []*hub.Message{m}
	}
	if err := s.hub.RecordTelemetryBatch(r.Context(), id, "sas", hub.TransportHTTPS, msgs); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// applyProperty maps one property name to a system field or an
// application property. System names match in any case; an application
// property keeps the case it arrived with (HTTP headers arrive
// canonicalised, batch JSON keys as sent).
func applyProperty(m *hub.Message, name, v string) {
	lower := strings.ToLower(name)
	if set, ok := systemHeaders[lower]; ok {
		set(m, v)
	} else if strings.HasPrefix(lower, appPrefix) && len(name) > len(appPrefix) {
		m.Properties[name[len(appPrefix):]] = v
	}
}

func parseBatch(body []byte) ([]*hub.Message, error) {
	var items []struct {
		Body          string            `json:"body"`
		Base64Encoded *bool             `json:"base64Encoded"`
		Properties    map[string]string `json:"properties"`
	}
	if err := json.Unmarshal(hub.DeviceJSON(body), &items); err != nil {
		return nil, huberr.ArgumentInvalid("The batch is not a JSON array of messages: %v", err)
	}
	out := make([]*hub.Message, 0, len(items))
	for i, it := range items {
		m := &hub.Message{Properties: map[string]string{}}
		if it.Base64Encoded == nil || *it.Base64Encoded {
			b, err := base64.StdEncoding.DecodeString(it.Body)
			if err != nil {
				return nil, huberr.ArgumentInvalid("Message %d of the batch: body is not valid base64.", i)
			}
			m.Body = b
		} else {
			m.Body = []byte(it.Body)
		}
		for k, v := range it.Properties {
			applyProperty(m, k, v)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *server) deviceReceive(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	lock, err := lockTimeout(r)
	if err != nil {
		return err
	}
	m, err := s.hub.ReceiveC2D(r.Context(), id.DeviceID, lock)
	if err != nil {
		return err
	}
	if m == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	h := w.Header()
	h.Set("ETag", strconv.Quote(m.LockToken))
	h.Set("iothub-sequencenumber", strconv.FormatUint(m.Seq, 10))
	h.Set("iothub-to", m.To)
	h.Set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
	h.Set("iothub-enqueuedtime", m.EnqueuedTime.UTC().Format(time.RFC1123))
	h.Set("iothub-expiry", m.ExpiryTime.UTC().Format(time.RFC1123))
	h.Set("iothub-ack", m.Ack)
	// Unset system properties are left out rather than sent empty.
	for k, v := range map[string]string{"iothub-messageid": m.MessageID, "iothub-correlationid": m.CorrelationID,
		"iothub-userid": m.UserID, "ContentType": m.ContentType, "ContentEncoding": m.ContentEncoding} {
		if v != "" {
			h.Set(k, v)
		}
	}
	for k, v := range m.Properties {
		h.Set(appPrefix+k, v)
	}
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(m.Body)
	return responseLost(err)
}

// lockedMessage reads the device and lock token of a settle route; the
// token arrives as the ETag it was handed out as, possibly quoted.
func lockedMessage(r *http.Request) (deviceID, token string, err error) {
	id, err := identityOf(r)
	if err != nil {
		return "", "", err
	}
	v, err := pathVar(r, "lock")
	if err != nil {
		return "", "", err
	}
	return id.DeviceID, strings.Trim(v, `"`), nil
}

func (s *server) deviceComplete(w http.ResponseWriter, r *http.Request) error {
	dev, tok, err := lockedMessage(r)
	if err != nil {
		return err
	}
	_, reject := r.URL.Query()["reject"]
	if err := s.hub.CompleteC2DLock(r.Context(), dev, tok, reject); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) deviceAbandon(w http.ResponseWriter, r *http.Request) error {
	dev, tok, err := lockedMessage(r)
	if err != nil {
		return err
	}
	if err := s.hub.AbandonC2DLock(r.Context(), dev, tok); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
