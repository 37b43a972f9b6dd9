// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// renderError renders a catalogue error as the hub's REST body
// (iothub-protocol.md §6.1). Form A: {"Message":"ErrorCode:<Name>;<message>",
// "ExceptionMessage":"Tracking ID:...-TimeStamp:..."}, which Node's parser
// understands. Form B: Message holds the escaped detail object and
// ExceptionMessage is empty (direct-method errors).
func renderError(e *huberr.Error, trackingID string, now time.Time) []byte {
	var v struct {
		Message          string `json:"Message"`
		ExceptionMessage string `json:"ExceptionMessage"`
	}
	switch e.Form {
	case huberr.FormB:
		inner, _ := json.Marshal(e.Detail(trackingID, now))
		v.Message = string(inner)
	default:
		v.Message = "ErrorCode:" + e.Name + ";" + e.Message
		v.ExceptionMessage = "Tracking ID:" + trackingID + "-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05")
	}
	b, _ := json.Marshal(v)
	return b
}

// writeError writes e as the hub does: its status, the JSON body, and the
// iothub-errorcode header that the C# SDK reads.
func writeError(w http.ResponseWriter, e *huberr.Error, trackingID string, now time.Time) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("iothub-errorcode", e.Name)
	body := renderError(e, trackingID, now)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
