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
// at the continuation token. The query is evaluated on one read
// transaction, a consistent snapshot, over the stored records themselves
// (see storedTwin), so it never sees half a write. A SELECT * result is the
// list of matching identities, and a page renders its own rows when it is
// asked for, each from one read, so a walk renders each row once and
// nothing it does not return. The token is an offset into the
// deterministic (key-ordered) result, so walking every page yields every
// match once while the data is unchanged.
func (h *Hub) Query(ctx context.Context, text string, pageSize int, continuation string) (*QueryPage, error) {
	defer func(start time.Time) { h.metrics.Query(time.Since(start)) }(time.Now())
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
	res, cached := h.queries.get(snap, text, h.Now())
	if !cached {
		if res, err = h.runQuery(ctx, q); err != nil {
			return nil, err
		}
	}
	page := &QueryPage{ItemType: q.ItemType(), Items: []json.RawMessage{}}
	if n := res.len(); offset < n {
		end := min(offset+pageSize, n)
		if res.keys != nil {
			if page.Items, err = h.renderRows(ctx, res.bucket, res.keys[offset:end]); err != nil {
				return nil, err
			}
		} else {
			page.Items = res.items[offset:end]
		}
		if end < n {
			if !cached {
				snap = h.queries.put(res, text, h.Now())
			}
			page.Continuation = encodeContinuation(end, text, snap)
		}
	}
	return page, nil
}

// queryResult is a query's whole result: rendered items, or for SELECT *
// over twins the keys of the matching records, rendered page by page.
type queryResult struct {
	items  []json.RawMessage
	keys   []string
	bucket store.Bucket
}

func (r *queryResult) len() int {
	if r.keys != nil {
		return len(r.keys)
	}
	return len(r.items)
}

// size is what the result costs the page cache, in bytes.
func (r *queryResult) size() int {
	n := 64
	for _, it := range r.items {
		n += len(it) + 24
	}
	for _, k := range r.keys {
		n += len(k) + 16
	}
	return n
}

// runQuery evaluates q over every twin of its collection.
func (h *Hub) runQuery(ctx context.Context, q *query.Query) (*queryResult, error) {
	if q.Collection() == query.CollectionJobs {
		items, err := h.runJobsQuery(ctx, q)
		if err != nil {
			return nil, err
		}
		return &queryResult{items: items}, nil
	}
	res := &queryResult{bucket: store.Devices}
	if q.Collection() == query.CollectionModules {
		res.bucket = store.Modules
	}
	err := h.db.View(func(tx *store.Tx) error {
		var walkErr error
		doc := &storedTwin{h: h, tx: tx, module: res.bucket == store.Modules, parents: &parentCache{}}
		docs := func(yield func(query.Document) bool) {
			n := 0
			walkErr = tx.ForEachRaw(res.bucket, "", "", func(k, v []byte) error {
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				doc.reset(k, v)
				if !yield(doc) {
					return store.ErrStop
				}
				return nil
			})
		}
		keys := []string{}
		var err error
		res.items, err = q.Run(docs, func() { keys = append(keys, string(doc.key)) })
		if q.ItemType() == "Twin" {
			res.items, res.keys = nil, keys
		}
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
	return res, nil
}

// renderRows renders the twins of keys as GET /twins/{id} shows them, on
// one read transaction. A twin deleted since the query ran is left out.
func (h *Hub) renderRows(ctx context.Context, bucket store.Bucket, keys []string) ([]json.RawMessage, error) {
	items := make([]json.RawMessage, 0, len(keys))
	err := h.db.View(func(tx *store.Tx) error {
		parents := &parentCache{}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			v := tx.Get(bucket, k)
			if v == nil {
				continue
			}
			doc := &storedTwin{h: h, tx: tx, module: bucket == store.Modules, parents: parents}
			doc.reset([]byte(k), v)
			b, err := doc.render()
			if err != nil {
				return err
			}
			items = append(items, b)
		}
		return nil
	})
	return items, err
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
// at its offset, which pages correctly while the data is unchanged. The
// cache is bounded in bytes: SELECT * keeps keys, not rows, so a walk over
// every twin costs tens of bytes per twin; a result too large for a quarter
// of the budget is not kept.
const (
	maxQueryCacheBytes = 64 << 20
	queryCacheTTL      = 10 * time.Minute
)

// A cached result's id is random, not a counter: a token from before a
// restart, or from another query, never names someone else's result. The
// entry also keeps its query text, which a lookup must match.
type queryCache struct {
	mu      sync.Mutex
	entries map[string]*cachedResult
	bytes   int
}

type cachedResult struct {
	text    string
	res     *queryResult
	size    int
	created time.Time
}

func (c *queryCache) get(id, text string, now time.Time) (*queryResult, bool) {
	if id == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[id]
	if e == nil || e.text != text || now.Sub(e.created) > queryCacheTTL {
		return nil, false
	}
	return e.res, true
}

// put keeps res and returns its id; "" (no entry) when it is too large.
func (c *queryCache) put(res *queryResult, text string, now time.Time) string {
	size := res.size() + len(text)
	if size > maxQueryCacheBytes/4 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cachedResult{}
	}
	for id, e := range c.entries {
		if now.Sub(e.created) > queryCacheTTL {
			c.drop(id, e)
		}
	}
	for c.bytes+size > maxQueryCacheBytes && len(c.entries) > 0 {
		oldest := ""
		for id, e := range c.entries {
			if oldest == "" || e.created.Before(c.entries[oldest].created) {
				oldest = id
			}
		}
		c.drop(oldest, c.entries[oldest])
	}
	id := uuid.New()
	c.entries[id] = &cachedResult{text: text, res: res, size: size, created: now}
	c.bytes += size
	return id
}

func (c *queryCache) drop(id string, e *cachedResult) {
	delete(c.entries, id)
	c.bytes -= e.size
}

func fnv64(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
