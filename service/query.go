// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"strconv"
	"sync"
)

// Query result item types, from the x-ms-item-type response header.
const (
	ItemTypeTwin        = "Twin"        // SELECT * FROM devices or devices.modules
	ItemTypeRaw         = "Raw"         // projections and aggregates
	ItemTypeDeviceJob   = "DeviceJob"   // devices.jobs
	ItemTypeJobResponse = "JobResponse" // jobs queries
)

// ErrNoMorePages is returned by Query.NextPage after the last page.
var ErrNoMorePages = errors.New("service: query has no more pages")

// Query is a running IoT Hub query (POST /devices/query), read a page at a
// time with NextPage or item by item with All. It holds only the query and
// its position; each page request takes the context of the call that reads
// it. Its methods may be called from several goroutines; pages are then
// fetched one at a time.
type Query struct {
	c        *Client
	text     string
	pageSize int
	// page, when set, makes the page request instead of POST /devices/query
	// (QueryJobs); h carries the paging headers.
	page func(h http.Header) *call

	mu           sync.Mutex
	started      bool
	continuation string
	itemType     string
}

// Query prepares the query text, for example
// "SELECT * FROM devices WHERE tags.site = 'B7'". pageSize sets
// x-ms-max-item-count (0 leaves the page size to the hub, which may also
// use a smaller one). No request is made until a page is read with
// NextPage, All or Twins, whose context bounds it.
func (c *Client) Query(text string, pageSize int) *Query {
	return &Query{c: c, text: text, pageSize: pageSize}
}

// HasMore reports whether NextPage may return more items: true before the
// first page and while the hub returns a continuation token.
func (q *Query) HasMore() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.started || q.continuation != ""
}

// ItemType returns the x-ms-item-type of the last page (see the ItemType
// constants), or "" before the first page.
func (q *Query) ItemType() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.itemType
}

// ContinuationToken returns the token for the next page, "" when there is
// none.
func (q *Query) ContinuationToken() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.continuation
}

// NextPage fetches the next page of results within ctx. After the last page
// it returns ErrNoMorePages. The request is retried as a read (a query
// changes nothing). A failed or cancelled page can be requested again.
func (q *Query) NextPage(ctx context.Context) ([]json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started && q.continuation == "" {
		return nil, ErrNoMorePages
	}
	if q.text == "" && q.page == nil {
		return nil, errorf("Query", "query text is required")
	}
	// Headers as Node's Registry._executeQueryFunc sends them
	// (azure-iothub dist/registry.js): each only when set.
	h := http.Header{}
	if q.continuation != "" {
		h.Set("x-ms-continuation", q.continuation)
	}
	if q.pageSize > 0 {
		h.Set("x-ms-max-item-count", strconv.Itoa(q.pageSize))
	}
	cl := &call{
		op: "Query", method: http.MethodPost, path: "/devices/query", header: h,
		body: map[string]string{"query": q.text}, idempotent: true,
	}
	if q.page != nil {
		cl = q.page(h)
	}
	var raw json.RawMessage
	header, err := q.c.do(ctx, cl, &raw)
	if err != nil {
		return nil, err
	}
	items, err := decodePage(raw)
	if err != nil {
		return nil, errorf(cl.op, "decoding page: %w", err)
	}
	q.started = true
	// The hub omits x-ms-continuation on the last page (Node's Query sets
	// hasMoreResults from the header's presence).
	q.continuation = header.Get("x-ms-continuation")
	q.itemType = header.Get("x-ms-item-type")
	return items, nil
}

// decodePage reads a page: a bare JSON array, which is what the hub sends
// and the SDKs read, or the {"type","items","continuationToken"} wrapper of
// the REST spec.
func decodePage(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	var items []json.RawMessage
	if raw[0] == '{' {
		var w struct {
			Items []json.RawMessage `json:"items"`
		}
		err := json.Unmarshal(raw, &w)
		return w.Items, err
	}
	err := json.Unmarshal(raw, &items)
	return items, err
}

// All returns an iterator over every remaining item, fetching pages within
// ctx as needed. On an error, including ctx ending, it yields (nil, err)
// once and stops.
func (q *Query) All(ctx context.Context) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		for q.HasMore() {
			page, err := q.NextPage(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, item := range page {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}

// Twins returns an iterator over every remaining item decoded as a twin, for
// SELECT * queries on devices or devices.modules, fetching pages within ctx
// as All does.
func (q *Query) Twins(ctx context.Context) iter.Seq2[*Twin, error] {
	return func(yield func(*Twin, error) bool) {
		for item, err := range q.All(ctx) {
			if err != nil {
				yield(nil, err)
				return
			}
			t := new(Twin)
			if err := json.Unmarshal(item, t); err != nil {
				yield(nil, errorf("Query", "decoding twin: %w", err))
				return
			}
			if !yield(t, nil) {
				return
			}
		}
	}
}
