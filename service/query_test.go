// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pagedHub serves five twins in pages of two, as the hub does: a
// continuation token on every page but the last, x-ms-item-type Twin.
func pagedHub(t *testing.T) *fakeHub {
	t.Helper()
	pages := map[string]struct {
		items []string
		next  string
	}{
		"":   {[]string{"d1", "d2"}, "c1"},
		"c1": {[]string{"d3", "d4"}, "c2"},
		"c2": {[]string{"d5"}, ""},
	}
	return newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		p, ok := pages[r.Header.Get("x-ms-continuation")]
		if !ok {
			replyFormA(w, 400, "ArgumentInvalid", "bad continuation token")
			return
		}
		var docs []json.RawMessage
		for _, id := range p.items {
			docs = append(docs, json.RawMessage(fmt.Sprintf(`{"deviceId":%q,"etag":"AAAAAAAAAAE=","version":2,"tags":{"n":%q}}`, id, id)))
		}
		body, _ := json.Marshal(docs)
		w.Header().Set("x-ms-item-type", ItemTypeTwin)
		if p.next != "" {
			w.Header().Set("x-ms-continuation", p.next)
		}
		reply(w, 200, string(body))
	})
}

func TestQueryNextPageAcrossThreePages(t *testing.T) {
	hub := pagedHub(t)
	c, _ := hub.client(t)
	ctx := testContext(t)
	q := c.Query("SELECT * FROM devices", 2)
	if !q.HasMore() {
		t.Fatal("HasMore before the first page = false, want true")
	}
	var got [][]string
	for q.HasMore() {
		page, err := q.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		var ids []string
		for _, item := range page {
			var tw Twin
			if err := json.Unmarshal(item, &tw); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tw.DeviceID)
		}
		got = append(got, ids)
		if q.ItemType() != ItemTypeTwin {
			t.Errorf("ItemType = %q, want Twin", q.ItemType())
		}
	}
	if diff := cmp.Diff([][]string{{"d1", "d2"}, {"d3", "d4"}, {"d5"}}, got); diff != "" {
		t.Errorf("pages mismatch (-want +got):\n%s", diff)
	}
	if _, err := q.NextPage(ctx); !errors.Is(err, ErrNoMorePages) {
		t.Errorf("NextPage after the last page: got %v, want ErrNoMorePages", err)
	}

	reqs := hub.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	wantTokens := []string{"", "c1", "c2"}
	for i, r := range reqs {
		if got := r.Header.Get("x-ms-continuation"); got != wantTokens[i] {
			t.Errorf("request %d x-ms-continuation = %q, want %q", i, got, wantTokens[i])
		}
		if _, ok := r.Header["X-Ms-Continuation"]; i == 0 && ok {
			t.Errorf("first request carries x-ms-continuation, want none (Node sends it only when set)")
		}
		if got := r.Header.Get("x-ms-max-item-count"); got != "2" {
			t.Errorf("request %d x-ms-max-item-count = %q, want 2", i, got)
		}
		checkJSON(t, "query body", r.Body, `{"query":"SELECT * FROM devices"}`)
		checkCommonHeaders(t, r, hub.host())
	}
}

func TestQueryAllAndTwins(t *testing.T) {
	hub := pagedHub(t)
	c, _ := hub.client(t)
	ctx := testContext(t)

	var ids []string
	for item, err := range c.Query("SELECT * FROM devices", 2).All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ DeviceID string }
		if err := json.Unmarshal(item, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.DeviceID)
	}
	if diff := cmp.Diff([]string{"d1", "d2", "d3", "d4", "d5"}, ids); diff != "" {
		t.Errorf("All mismatch (-want +got):\n%s", diff)
	}

	var tags []string
	for tw, err := range c.Query("SELECT * FROM devices", 2).Twins(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		m, err := tw.Tags.Map()
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, m["n"].(string))
	}
	if diff := cmp.Diff(ids, tags); diff != "" {
		t.Errorf("Twins mismatch (-want +got):\n%s", diff)
	}
}

// TestQueryAllStopsEarly checks that breaking out of the loop fetches no
// further pages.
func TestQueryAllStopsEarly(t *testing.T) {
	hub := pagedHub(t)
	c, _ := hub.client(t)
	q := c.Query("SELECT * FROM devices", 2)
	for _, err := range q.All(testContext(t)) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := len(hub.requests()); n != 1 {
		t.Errorf("got %d requests, want 1", n)
	}
	if q.ContinuationToken() != "c1" {
		t.Errorf("ContinuationToken = %q, want c1", q.ContinuationToken())
	}
}

func TestQueryErrorIsYieldedOnce(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		replyFormA(w, 400, "ArgumentInvalid", "syntax error near FORM")
	})
	c, _ := hub.client(t)
	var errs []error
	for item, err := range c.Query("SELECT * FORM devices", 0).All(testContext(t)) {
		if item != nil {
			t.Errorf("got item %s with the error, want nil", item)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrBadRequest) {
		t.Errorf("got %v, want one 400 error", errs)
	}
	if _, ok := hub.requests()[0].Header["X-Ms-Max-Item-Count"]; ok {
		t.Errorf("x-ms-max-item-count sent with page size 0, want it omitted")
	}
}

func TestQueryProjectionAndWrapper(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"array", `[{"n":5}]`},
		{"spec wrapper", `{"type":"raw","items":[{"n":5}],"continuationToken":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("x-ms-item-type", ItemTypeRaw)
				reply(w, 200, tt.body)
			})
			c, _ := hub.client(t)
			q := c.Query("SELECT COUNT() AS n FROM devices", 0)
			page, err := q.NextPage(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != 1 || string(page[0]) != `{"n":5}` || q.ItemType() != ItemTypeRaw || q.HasMore() {
				t.Errorf("got %s type %q more %v, want [{\"n\":5}] Raw false", page, q.ItemType(), q.HasMore())
			}
		})
	}
}

// TestQueryContextPerCall checks that each page request runs under the
// context of the call that reads it: a cancelled call fails without
// moving the query on, the next call with a live context carries on, and
// All stops at the first page it cannot fetch.
func TestQueryContextPerCall(t *testing.T) {
	hub := pagedHub(t)
	c, _ := hub.client(t)
	q := c.Query("SELECT * FROM devices", 2)
	if _, err := q.NextPage(testContext(t)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(testContext(t))
	cancel()
	if _, err := q.NextPage(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("NextPage with a cancelled context: got %v, want context.Canceled", err)
	}
	page, err := q.NextPage(testContext(t))
	if err != nil {
		t.Fatalf("NextPage after the cancelled one: %v", err)
	}
	if len(page) != 2 || !strings.Contains(string(page[0]), `"d3"`) {
		t.Errorf("got page %s, want the second page (d3, d4)", page)
	}

	ctx, stop := context.WithCancel(testContext(t))
	defer stop()
	var items, errs int
	for _, err := range c.Query("SELECT * FROM devices", 2).All(ctx) {
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("All: got %v, want context.Canceled", err)
			}
			errs++
			continue
		}
		items++
		stop() // the rest of this page is already here; the next is not
	}
	if items != 2 || errs != 1 {
		t.Errorf("All yielded %d items and %d errors, want the first page's 2 and 1 error", items, errs)
	}
}
