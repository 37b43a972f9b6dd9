// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// storedTwinBytes returns id's twin as the store holds it.
func storedTwinBytes(t *testing.T, h *Hub, id Identity) []byte {
	t.Helper()
	var out []byte
	if err := h.db.View(func(tx *store.Tx) error {
		raw, _, ok := splitTwin(tx.Peek(bucketFor(id), id.key()))
		if !ok {
			return fmt.Errorf("record %s does not start with its twin", id)
		}
		out = bytes.Clone(raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// members decodes a JSON object.
func members(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// A reported patch leaves its twin decoded in the cache, and the next one
// uses it: the entry is what the store holds, and taking it empties it.
func TestTwinCacheKeepsWhatWasCommitted(t *testing.T) {
	h := newRegHub(t)
	id := Identity{DeviceID: "d"}
	regDevice(t, h, Device{DeviceID: id.DeviceID})
	if _, err := h.PatchReported(id, []byte(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	stored := storedTwinBytes(t, h, id)
	e, ok := h.twins.m[id]
	if !ok {
		t.Fatal("no cached twin after a reported patch")
	}
	if !bytes.Equal(e.raw, stored) {
		t.Fatalf("cached bytes\n%s\nare not the stored twin\n%s", e.raw, stored)
	}
	if b, _ := e.doc.Marshal(); !bytes.Equal(b, stored) {
		t.Fatalf("cached document encodes as\n%s\nnot as the stored twin\n%s", b, stored)
	}

	if d := h.twins.take(id, append(bytes.Clone(stored), ' ')); d != nil {
		t.Fatal("take returned a document for bytes that differ from the cached ones")
	}
	if _, ok := h.twins.m[id]; ok {
		t.Fatal("a missed take left the entry behind")
	}
}

// Every other writer of a record misses the cache because it changes the
// stored bytes: a reported patch after a back-end desired write, a tags
// replacement or a registry update must keep what those wrote.
func TestTwinCacheMissesAfterOtherWriters(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	id := Identity{DeviceID: "d"}
	regDevice(t, h, Device{DeviceID: id.DeviceID})
	if _, err := h.PatchReported(id, []byte(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, id, []byte(`{"tags":{"site":"x"},"properties":{"desired":{"want":7}}}`), "*", false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PatchReported(id, []byte(`{"b":2}`), 0); err != nil {
		t.Fatal(err)
	}
	tw, err := h.GetTwin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tags, desired := members(t, tw.Tags), members(t, tw.Properties.Desired); tags["site"] == nil || desired["want"] == nil {
		t.Fatalf("the back end's write was lost: tags %s, desired %s", tw.Tags, tw.Properties.Desired)
	}
	if rep := members(t, tw.Properties.Reported); rep["a"] == nil || rep["b"] == nil {
		t.Fatalf("reported %s, want a and b", tw.Properties.Reported)
	}

	dev, err := h.GetDevice(ctx, id.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	dev.Status = "disabled"
	if _, err := h.PutDevice(ctx, dev, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PatchReported(id, []byte(`{"c":3}`), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := h.GetDevice(ctx, id.DeviceID); err != nil || got.Status != "disabled" {
		t.Fatalf("after a reported patch the device is %+v (%v), want it disabled", got, err)
	}
}

// A write that fails puts nothing back: the next one decodes what is
// stored, not a document the failed write may have touched.
func TestTwinCacheFailedWriteLeavesNothing(t *testing.T) {
	h := newRegHub(t)
	id := Identity{DeviceID: "d"}
	regDevice(t, h, Device{DeviceID: id.DeviceID})
	v, err := h.PatchReported(id, []byte(`{"a":1}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PatchReported(id, []byte(`{"stale":true}`), v+5); huberr.As(err) == nil || huberr.As(err).Status != 412 {
		t.Fatalf("patch on a stale version: %v, want PreconditionFailed", err)
	}
	if _, ok := h.twins.m[id]; ok {
		t.Fatal("a refused write left a cached twin")
	}
	big := fmt.Sprintf(`{"big":%q}`, strings.Repeat("x", 40<<10))
	if _, err := h.PatchReported(id, []byte(big), 0); err == nil {
		t.Fatal("a reported section over its limit was accepted")
	}
	if _, err := h.PatchReported(id, []byte(`{"b":2}`), 0); err != nil {
		t.Fatal(err)
	}
	tw, err := h.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	rep := members(t, tw.Properties.Reported)
	if rep["stale"] != nil || rep["big"] != nil || rep["a"] == nil || rep["b"] == nil {
		t.Fatalf("reported %s, want a and b only", tw.Properties.Reported)
	}
}

// The cache changes no byte of what is stored: two devices take the same
// reported patches, one through the cache and one with the cache emptied
// before each write, and their stored twins stay equal.
func TestTwinCacheStoresWhatDecodingWould(t *testing.T) {
	h := newRegHub(t)
	cached, fresh := Identity{DeviceID: "cached"}, Identity{DeviceID: "fresh"}
	regDevice(t, h, Device{DeviceID: cached.DeviceID})
	regDevice(t, h, Device{DeviceID: fresh.DeviceID})
	patches := []string{
		`{"a":1}`, `{"a":{"b":[1,2,{"c":"d"}]}}`, `{"a":null,"s":"é\u2028"}`,
		`{"n":-1.5e3,"o":{"p":{"q":{"r":true}}}}`, `{"o":{"p":null}}`, `{"o":{"x":[]},"n":0}`,
		`{"a":{"b":2}}`, `{}`, `{"s":"same"}`, `{"s":"same"}`,
	}
	for i, p := range patches {
		h.clk.Set(regNow.Add(time.Duration(i) * time.Second))
		delete(h.twins.m, fresh)
		if _, err := h.PatchReported(fresh, []byte(p), 0); err != nil {
			t.Fatalf("patch %d on %s: %v", i, fresh, err)
		}
		before := h.twins.m[cached].doc
		if _, err := h.PatchReported(cached, []byte(p), 0); err != nil {
			t.Fatalf("patch %d on %s: %v", i, cached, err)
		}
		// The same document, changed in place: the write took it from the cache.
		if after := h.twins.m[cached].doc; i > 0 && (before == nil || after != before) {
			t.Fatalf("patch %d did not go through the cached document", i)
		}
		want, got := storedTwinBytes(t, h, fresh), storedTwinBytes(t, h, cached)
		if !bytes.Equal(got, want) {
			t.Fatalf("patch %d %s: stored through the cache\n%s\ndecoded afresh\n%s", i, p, got, want)
		}
	}
}

// The cache holds at most maxCachedTwins documents and maxCachedTwinBytes
// of their encodings, keeps no twin too big to be worth it, and a put for
// an identity it holds replaces the entry without evicting another.
func TestTwinCacheBounded(t *testing.T) {
	var c twinCache
	doc := twin.New(regNow)
	for i := range maxCachedTwins + 50 {
		c.put(Identity{DeviceID: fmt.Sprint(i)}, []byte("{}"), doc)
	}
	if len(c.m) != maxCachedTwins || c.bytes != 2*maxCachedTwins {
		t.Fatalf("%d entries of %d bytes, want %d of %d", len(c.m), c.bytes, maxCachedTwins, 2*maxCachedTwins)
	}
	var kept Identity
	for k := range c.m {
		kept = k
		break
	}
	c.put(kept, []byte(`{"x":1}`), doc)
	if len(c.m) != maxCachedTwins {
		t.Fatalf("replacing an entry changed the count to %d", len(c.m))
	}
	if c.take(kept, []byte(`{"x":1}`)) != doc {
		t.Fatal("the replaced entry is not the new one")
	}
	if c.take(kept, []byte(`{"x":1}`)) != nil {
		t.Fatal("an entry was taken twice")
	}

	big := bytes.Repeat([]byte("x"), maxCachedTwinBytes/8)
	for i := range 20 {
		c.put(Identity{DeviceID: fmt.Sprint("big", i)}, big, doc)
		if c.bytes > maxCachedTwinBytes {
			t.Fatalf("after %d large twins the cache holds %d bytes, over %d", i+1, c.bytes, maxCachedTwinBytes)
		}
	}
	sum := 0
	for _, e := range c.m {
		sum += len(e.raw)
	}
	if sum != c.bytes {
		t.Fatalf("the cache counts %d bytes and holds %d", c.bytes, sum)
	}
	c.put(Identity{DeviceID: "huge"}, append(big, 'x'), doc)
	if _, ok := c.m[Identity{DeviceID: "huge"}]; ok {
		t.Fatal("a twin over an eighth of the byte bound was cached")
	}
}
