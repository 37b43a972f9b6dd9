// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// File upload for devices (iot-hub-devguide-file-upload): POST
// /devices/{id}/files hands out a blob SAS, POST
// /devices/{id}/files/notifications reports the outcome. The Node device
// SDK puts the correlation id in the path instead of the body
// (azure-iot-device FileUploadApi.notifyUploadComplete), so both forms are
// served.

func (s *server) createFileUpload(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var req struct {
		BlobName *string `json:"blobName"`
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return huberr.ArgumentNull("The request body must hold {\"blobName\": ...}.")
	}
	if err := json.Unmarshal(hub.DeviceJSON(b), &req); err != nil {
		return huberr.ArgumentInvalid("The request body is not valid JSON for this operation: %v", err)
	}
	if req.BlobName == nil {
		return huberr.ArgumentNull("blobName is required.")
	}
	sas, err := s.hub.CreateFileUpload(r.Context(), id.DeviceID, *req.BlobName)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sas)
}

func (s *server) completeFileUpload(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var req struct {
		CorrelationID string `json:"correlationId"`
		hub.FileUploadStatus
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return huberr.ArgumentNull("The request body must hold the upload's status.")
	}
	if err := json.Unmarshal(hub.DeviceJSON(b), &req); err != nil {
		return huberr.ArgumentInvalid("The request body is not valid JSON for this operation: %v", err)
	}
	if _, ok := routeVar(r, "cid"); ok {
		if req.CorrelationID, err = pathVar(r, "cid"); err != nil {
			return err
		}
	}
	if err := s.hub.CompleteFileUpload(r.Context(), id.DeviceID, req.CorrelationID, req.FileUploadStatus); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// File-upload notifications for the back end, an emulator-only HTTPS view
// of the queue the AMQP node /messages/serviceBound/filenotifications
// serves (package amqpapi): the same receive (lock), complete, abandon and
// reject as the feedback queue.

// fileNotification receives the next notification: 200 with its JSON body
// and the lock token as ETag, or 204 after waiting up to wait seconds.
func (s *server) fileNotification(w http.ResponseWriter, r *http.Request) error {
	lock, err := lockTimeout(r)
	if err != nil {
		return err
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := strconv.ParseFloat(v, 64)
		if err != nil || !(d >= 0) { // also NaN
			return huberr.ArgumentInvalid("wait must be a number of seconds; got '%s'.", v)
		}
		// Clamped before the conversion, which overflows for large values.
		wait = time.Duration(min(d, maxWait.Seconds()) * float64(time.Second))
	}
	extendWrite(w, wait)
	m, err := s.hub.ReceiveFileNotification(r.Context(), lock, wait)
	if err != nil {
		return err
	}
	if m == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", hub.FileNotificationContentType)
	h.Set("ETag", strconv.Quote(m.LockToken))
	h.Set("iothub-messageid", m.MessageID)
	h.Set("iothub-sequencenumber", strconv.FormatUint(m.Seq, 10))
	h.Set("iothub-to", "/messages/serviceBound/filenotifications")
	h.Set("iothub-userid", strings.SplitN(s.hub.HostName(), ".", 2)[0])
	h.Set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
	h.Set("iothub-enqueuedtime", m.EnqueuedTime.UTC().Format(time.RFC1123))
	h.Set("iothub-expiry", m.ExpiryTime.UTC().Format(time.RFC1123))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(m.Body())
	return responseLost(err)
}

func (s *server) completeFileNotification(w http.ResponseWriter, r *http.Request) error {
	tok, err := feedbackLock(r)
	if err != nil {
		return err
	}
	if _, reject := r.URL.Query()["reject"]; reject {
		err = s.hub.RejectFileNotification(r.Context(), tok)
	} else {
		err = s.hub.CompleteFileNotification(r.Context(), tok)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) abandonFileNotification(w http.ResponseWriter, r *http.Request) error {
	tok, err := feedbackLock(r)
	if err != nil {
		return err
	}
	if err := s.hub.AbandonFileNotification(r.Context(), tok); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
