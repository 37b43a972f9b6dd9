// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

func walk(t *testing.T, h *Hub, q string, size int, between func()) []string {
	t.Helper()
	var ids []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		p, err := h.Query(context.Background(), q, size, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			var v struct {
				DeviceID string `json:"deviceId"`
			}
			json.Unmarshal(it, &v)
			ids = append(ids, v.DeviceID)
		}
		if p.Continuation == "" {
			return ids
		}
		tok = p.Continuation
		if between != nil {
			between()
		}
	}
}

func TestQueryPagingWalksEveryMatchOnce(t *testing.T) {
	h := newRegHub(t)
	for i := range 23 {
		regDevice(t, h, Device{DeviceID: fmt.Sprintf("d%02d", i)})
	}
	want := fmt.Sprint(walk(t, h, "SELECT * FROM devices", 1000, nil))
	if got := fmt.Sprint(walk(t, h, "SELECT * FROM devices", 5, nil)); got != want {
		t.Fatalf("pages of 5: got %s, want %s", got, want)
	}
	// A token whose cached result is gone re-runs the query and still pages
	// correctly while the data is unchanged.
	evict := func() {
		h.queries.mu.Lock()
		h.queries.entries = nil
		h.queries.mu.Unlock()
	}
	if got := fmt.Sprint(walk(t, h, "SELECT * FROM devices", 5, evict)); got != want {
		t.Fatalf("pages of 5 with the cache emptied between pages: got %s, want %s", got, want)
	}
	// Later pages come from the first page's snapshot: a device created
	// meanwhile does not shift them.
	n := 0
	got := walk(t, h, "SELECT * FROM devices", 5, func() {
		n++
		regDevice(t, h, Device{DeviceID: fmt.Sprintf("a%02d", n)})
	})
	if fmt.Sprint(got) != want {
		t.Fatalf("pages while devices are created: got %v, want the snapshot %s", got, want)
	}
}

func TestQueryContinuationFromAnotherQueryIsRefused(t *testing.T) {
	h := newRegHub(t)
	for i := range 3 {
		regDevice(t, h, Device{DeviceID: fmt.Sprintf("d%d", i)})
	}
	p, err := h.Query(context.Background(), "SELECT * FROM devices", 1, "")
	if err != nil || p.Continuation == "" {
		t.Fatalf("first page: %v, %+v", err, p)
	}
	if _, err := h.Query(context.Background(), "SELECT deviceId FROM devices", 1, p.Continuation); err == nil {
		t.Fatal("a token from another query was accepted")
	}
	if _, err := h.Query(context.Background(), "SELECT * FROM devices", 1, "!!"); err == nil {
		t.Fatal("a garbage token was accepted")
	}
}

// TestContinuationNeverReturnsAnotherQuerysRows: a token names the cached
// result it pages through. After a restart (a new Hub over the same store)
// another query's cached result must not answer it, nor may a token that
// names another query's result, even with a matching text hash.
func TestContinuationNeverReturnsAnotherQuerysRows(t *testing.T) {
	h1 := newRegHub(t)
	for i := range 6 {
		tag := "even"
		if i%2 == 1 {
			tag = "odd"
		}
		regDevice(t, h1, Device{DeviceID: fmt.Sprintf("d%d", i)})
		if _, err := h1.UpdateTwin(context.Background(), Identity{DeviceID: fmt.Sprintf("d%d", i)}, []byte(`{"tags":{"kind":"`+tag+`"}}`), "", false); err != nil {
			t.Fatal(err)
		}
	}
	const evens = "SELECT * FROM devices WHERE tags.kind = 'even'"
	const odds = "SELECT * FROM devices WHERE tags.kind = 'odd'"
	ids := func(p *QueryPage) []string {
		var out []string
		for _, it := range p.Items {
			var v struct{ DeviceID string }
			_ = json.Unmarshal(it, &v)
			out = append(out, v.DeviceID)
		}
		return out
	}
	first, err := h1.Query(context.Background(), evens, 1, "")
	if err != nil || first.Continuation == "" {
		t.Fatalf("first page: %v, token %q", err, first.Continuation)
	}

	// "Restart": a second hub over the same store, whose first cached
	// result is another query's.
	h2, err := New(h1.db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if p, err := h2.Query(context.Background(), odds, 1, ""); err != nil || p.Continuation == "" {
		t.Fatalf("odd query on the new hub: %v", err)
	}
	next, err := h2.Query(context.Background(), evens, 1, first.Continuation)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(next)); got != "[d2]" {
		t.Errorf("second page of the even query after a restart: got %s, want [d2]", got)
	}

	// A token for the even query that names the odd query's cached result.
	oddPage, err := h2.Query(context.Background(), odds, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	_, oddSnap, err := decodeContinuation(oddPage.Continuation, odds)
	if err != nil {
		t.Fatal(err)
	}
	forged := encodeContinuation(1, evens, oddSnap)
	p, err := h2.Query(context.Background(), evens, 1, forged)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(p)); got != "[d2]" {
		t.Errorf("even query with a token naming the odd result: got %s, want [d2]", got)
	}
}
