// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/uuid"
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
	offset, snap := 0, ""
	if continuation != "" {
		n, id, err := decodeContinuation(continuation, text)
		if err != nil {
			return nil, err
		}
		offset, snap = n, id
	}
	q, err := query.Parse(text)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, huberr.ArgumentInvalid("%s", qe.Error())
		}
		return nil, huberr.ArgumentInvalid("%s", err.Error())
	}
	items, cached := h.queries.get(snap, text, h.Now())
	if !cached {
		if items, err = h.runQuery(ctx, q); err != nil {
			return nil, err
		}
	}
	page := &QueryPage{ItemType: q.ItemType(), Items: []json.RawMessage{}}
	if offset < len(items) {
		end := min(offset+pageSize, len(items))
		page.Items = items[offset:end]
		if end < len(items) {
			if !cached {
				snap = h.queries.put(items, text, h.Now())
			}
			page.Continuation = encodeContinuation(end, text, snap)
		}
	}
	return page, nil
}

// runQuery evaluates q over every twin of its collection.
func (h *Hub) runQuery(ctx context.Context, q *query.Query) ([]json.RawMessage, error) {
	var items []json.RawMessage
	if q.Collection() == query.CollectionJobs {
		return h.runJobsQuery(ctx, q)
	}
	err := h.db.View(func(tx *store.Tx) error {
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
				tw, err := h.viewOf(tx, id, &r, parent)
				if err != nil {
					return err
				}
				// The same encoding restapi gives GET /twins/{id}: a row
				// and a GET of one twin never differ.
				b, err := json.Marshal(tw)
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
	return items, nil
}

// The continuation token carries the offset of the next page, a hash of
// the query text (a token from another query is refused rather than
// misapplied) and the id of the cached result it pages through.
func encodeContinuation(offset int, text, snap string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + ":" + strconv.FormatUint(fnv64(text), 36) + ":" + snap))
}

func decodeContinuation(tok, text string) (offset int, snap string, err error) {
	bad := huberr.ArgumentInvalid("The continuation token is not valid for this query.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, "", bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[1] != strconv.FormatUint(fnv64(text), 36) {
		return 0, "", bad
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 {
		return 0, "", bad
	}
	return n, parts[2], nil
}

// Paged results are kept for a while so that each next page is a slice of
// the first page's result, not a new run over every twin. A token whose
// result has gone (expired, evicted, restart) re-runs the query and slices
// at its offset, which pages correctly while the data is unchanged.
const (
	maxCachedQueries = 32
	queryCacheTTL    = 10 * time.Minute
)

// A cached result's id is random, not a counter: a token from before a
// restart, or from another query, never names someone else's result. The
// entry also keeps its query text, which a lookup must match.
type queryCache struct {
	mu      sync.Mutex
	entries map[string]*cachedResult
}

type cachedResult struct {
	text    string
	items   []json.RawMessage
	created time.Time
}

func (c *queryCache) get(id, text string, now time.Time) ([]json.RawMessage, bool) {
	if id == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[id]
	if e == nil || e.text != text || now.Sub(e.created) > queryCacheTTL {
		return nil, false
	}
	return e.items, true
}

func (c *queryCache) put(items []json.RawMessage, text string, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cachedResult{}
	}
	for id, e := range c.entries {
		if now.Sub(e.created) > queryCacheTTL {
			delete(c.entries, id)
		}
	}
	for len(c.entries) >= maxCachedQueries {
		oldest := ""
		for id, e := range c.entries {
			if oldest == "" || e.created.Before(c.entries[oldest].created) {
				oldest = id
			}
		}
		delete(c.entries, oldest)
	}
	id := uuid.New()
	c.entries[id] = &cachedResult{text: text, items: items, created: now}
	return id
}

func fnv64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
