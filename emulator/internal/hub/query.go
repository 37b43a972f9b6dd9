// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Query paging (iothub-protocol.md §6.6, §11 item 11).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// QueryPage is one page of a query's results.
type QueryPage struct {
	Items        []json.RawMessage
	ItemType     string // "Twin" or "Raw", for x-ms-item-type
	Continuation string // empty on the last page
}

// Query runs an IoT Hub query over twins and returns the page that starts
// at the continuation token. The whole query is evaluated on one read
// transaction, a consistent snapshot, so it never sees half a write; the
// token is an offset into the deterministic (key-ordered) result, so
// walking every page yields every match once while the data is unchanged.
func (h *Hub) Query(ctx context.Context, text string, pageSize int, continuation string) (*QueryPage, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	if pageSize > MaxPageSize {
		pageSize = MaxPageSize
	}
	offset := 0
	if continuation != "" {
		n, err := decodeContinuation(continuation, text)
		if err != nil {
			return nil, err
		}
		offset = n
	}
	q, err := query.Parse(text)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, huberr.ArgumentInvalid("%s", qe.Error())
		}
		return nil, huberr.ArgumentInvalid("%s", err.Error())
	}
	var items []json.RawMessage
	if q.Collection() == query.CollectionJobs {
		// Jobs are not implemented, so there are no device jobs to list.
		return &QueryPage{ItemType: q.ItemType(), Items: []json.RawMessage{}}, nil
	}
	err = h.db.View(func(tx *store.Tx) error {
		var walkErr error
		docs := func(yield func([]byte) bool) {
			bucket := store.Devices
			if q.Collection() == "devices.modules" {
				bucket = store.Modules
			}
			parents := map[string]*record{}
			walkErr = tx.ForEach(bucket, "", "", func(k string, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				var r record
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
				id := Identity{DeviceID: k}
				var parent *record
				if dev, mid, ok := strings.Cut(k, "\x00"); ok {
					id = Identity{DeviceID: dev, ModuleID: mid}
					if parent = parents[dev]; parent == nil {
						parent, _ = loadRecord(tx, Identity{DeviceID: dev})
						parents = map[string]*record{dev: parent}
					}
				}
				b, err := h.viewOf(tx, id, &r, parent)
				if err != nil {
					return err
				}
				if !yield(b) {
					return store.ErrStop
				}
				return nil
			})
		}
		var err error
		items, err = q.Execute(docs)
		if walkErr != nil {
			return walkErr
		}
		return err
	})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, huberr.ArgumentInvalid("%s", qe.Error())
		}
		return nil, err
	}
	page := &QueryPage{ItemType: q.ItemType(), Items: []json.RawMessage{}}
	if offset < len(items) {
		end := min(offset+pageSize, len(items))
		page.Items = items[offset:end]
		if end < len(items) {
			page.Continuation = encodeContinuation(end, text)
		}
	}
	return page, nil
}

// The continuation token binds the offset to the query text, so a token
// from another query is refused rather than silently misapplied.
func encodeContinuation(offset int, text string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + ":" + strconv.FormatUint(fnv64(text), 36)))
}

func decodeContinuation(tok, text string) (int, error) {
	bad := huberr.ArgumentInvalid("The continuation token is not valid for this query.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	off, sum, ok := strings.Cut(string(b), ":")
	if !ok || sum != strconv.FormatUint(fnv64(text), 36) {
		return 0, bad
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 {
		return 0, bad
	}
	return n, nil
}

func fnv64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
