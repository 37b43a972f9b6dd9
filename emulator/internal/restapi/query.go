// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// maxQueryLength is the hub's limit on query text (iothub-protocol.md §10).
const maxQueryLength = 8192

func (s *server) query(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Query string `json:"query"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.Query) == "" {
		return huberr.ArgumentNull("The query must not be empty.")
	}
	if len(body.Query) > maxQueryLength {
		return huberr.ArgumentInvalid("The query is %d characters long; the maximum is %d.", len(body.Query), maxQueryLength)
	}
	size := 0
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return huberr.ArgumentInvalid("x-ms-max-item-count must be a positive integer; got '%s'.", v)
		}
		size = n
	}
	page, err := s.hub.Query(r.Context(), body.Query, size, r.Header.Get("x-ms-continuation"))
	if err != nil {
		return err
	}
	w.Header().Set("x-ms-item-type", page.ItemType)
	if page.Continuation != "" {
		w.Header().Set("x-ms-continuation", page.Continuation)
	}
	return writeJSON(w, http.StatusOK, page.Items)
}
