// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"sync"

	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// twinCache keeps the decoded twins of the identities whose twins were
// written last, each with the stored bytes it is the decoding of. A device
// that reports often then skips decoding its twin on each write: the
// write's read finds the stored twin unchanged (byte for byte) since it
// wrote it, and takes the document over instead of decoding it. Any other
// writer of the record (the back end, registry updates, configurations)
// changes the bytes and so misses: equal bytes decode to an equal
// document, which is what keeps the cache correct without hooks in those
// paths.
//
// An entry is taken out, not shared: the writer that takes it owns the
// document while it holds the identity's lock, and puts the changed one
// back only once its commit has written the matching bytes. A write that
// fails or retries leaves nothing behind.
type twinCache struct {
	mu sync.Mutex
	m  map[Identity]cachedTwin
}

type cachedTwin struct {
	raw []byte // the twin as stored, as twin.Doc.Marshal wrote it
	doc *twin.Doc
}

// maxCachedTwins bounds the cache. The writers that gain are the ones that
// write often, and at bench and soak rates a few hundred devices at most
// are between writes at any instant; the rest decode, as before.
const maxCachedTwins = 512

// take returns the cached document of id if raw, the stored twin, is what
// it decodes, and removes the entry either way.
func (c *twinCache) take(id Identity, raw []byte) *twin.Doc {
	c.mu.Lock()
	e, ok := c.m[id]
	if ok {
		delete(c.m, id)
	}
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil
	}
	return e.doc
}

// put caches doc, the decoding of raw, which the caller has just
// committed for id. raw must not change afterwards.
func (c *twinCache) put(id Identity, raw []byte, doc *twin.Doc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[Identity]cachedTwin)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= maxCachedTwins {
		for k := range c.m { // map order: an arbitrary entry makes room
			delete(c.m, k)
			break
		}
	}
	c.m[id] = cachedTwin{raw: raw, doc: doc}
}
