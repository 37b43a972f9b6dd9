// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Cloud-to-device routes of the service (iothub-protocol.md §7; the Python
// and Node service SDKs' generated cloudToDeviceMessages operations): the
// feedback queue and the purge of a device's queue.

// receiveFeedback locks the next feedback message: 200 with a JSON array of
// records and the lock token as ETag, or 204 when there is none. Like the
// device receive, it takes an optional iothub-messagelocktimeout.
func (s *server) receiveFeedback(w http.ResponseWriter, r *http.Request) error {
	lock, err := lockTimeout(r)
	if err != nil {
		return err
	}
	m, err := s.hub.ReceiveFeedback(r.Context(), lock)
	if err != nil {
		return err
	}
	if m == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	body, err := json.Marshal(m.Records)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", hub.FeedbackContentType)
	h.Set("ETag", strconv.Quote(m.LockToken))
	h.Set("iothub-messageid", m.MessageID)
	h.Set("iothub-sequencenumber", strconv.FormatUint(m.Seq, 10))
	h.Set("iothub-to", "/messages/serviceBound/feedback")
	// The hub sends feedback as itself: the user id is the hub's name.
	h.Set("iothub-userid", strings.SplitN(s.hub.HostName(), ".", 2)[0])
	h.Set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
	h.Set("iothub-enqueuedtime", m.EnqueuedTime.UTC().Format(time.RFC1123))
	h.Set("iothub-expiry", m.ExpiryTime.UTC().Format(time.RFC1123))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return responseLost(err)
}

// feedbackLock reads the lock token of a feedback settle route, which
// arrives as the ETag it was handed out as, possibly quoted.
func feedbackLock(r *http.Request) (string, error) {
	v, err := pathVar(r, "lock")
	return strings.Trim(v, `"`), err
}

func (s *server) completeFeedback(w http.ResponseWriter, r *http.Request) error {
	tok, err := feedbackLock(r)
	if err != nil {
		return err
	}
	if err := s.hub.CompleteFeedback(r.Context(), tok); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) abandonFeedback(w http.ResponseWriter, r *http.Request) error {
	tok, err := feedbackLock(r)
	if err != nil {
		return err
	}
	if err := s.hub.AbandonFeedback(r.Context(), tok); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// purgeC2D empties a device's cloud-to-device queue and answers the
// PurgeMessageQueueResult the SDKs parse.
func (s *server) purgeC2D(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	res, err := s.hub.PurgeC2D(r.Context(), id.DeviceID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// lockTimeout reads the optional iothub-messagelocktimeout header (seconds).
func lockTimeout(r *http.Request) (time.Duration, error) {
	v := r.Header.Get("iothub-messagelocktimeout")
	if v == "" {
		return 0, nil
	}
	lock, err := seconds(v, hub.MaxLockTimeout)
	if err != nil {
		return 0, huberr.ArgumentInvalid("iothub-messagelocktimeout must be a positive number of seconds, at most %d; got '%s'.", int64(hub.MaxLockTimeout/time.Second), v)
	}
	return lock, nil
}
