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
	mu    sync.Mutex
	m     map[Identity]cachedTwin
	bytes int // the cached twins' encoded sizes, summed
}

type cachedTwin struct {
	raw []byte // the twin as stored, as twin.Doc.Marshal wrote it
	doc *twin.Doc
}

// maxCachedTwins and maxCachedTwinBytes bound the cache. The writers that
// gain are the ones that write often, and at bench and soak rates a few
// hundred devices at most are between writes at any instant; the rest
// decode, as before. A twin's sections may hold 72 KB of properties, more
// with their $metadata, and a few times that decoded, so the count alone
// would let 512 large twins hold hundreds of MB: their encoded sizes are
// bounded too.
const (
	maxCachedTwins     = 512
	maxCachedTwinBytes = 4 << 20
)

// take returns the cached document of id if raw, the stored twin, is what
// it decodes, and removes the entry either way.
func (c *twinCache) take(id Identity, raw []byte) *twin.Doc {
	c.mu.Lock()
	e, ok := c.m[id]
	if ok {
		c.remove(id, e)
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
	if len(raw) > maxCachedTwinBytes/8 {
		return // too big to keep for long: the next write decodes it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[Identity]cachedTwin)
	}
	if e, ok := c.m[id]; ok {
		c.remove(id, e)
	}
	for k, e := range c.m { // map order: arbitrary entries make room
		if len(c.m) < maxCachedTwins && c.bytes+len(raw) <= maxCachedTwinBytes {
			break
		}
		c.remove(k, e)
	}
	c.m[id] = cachedTwin{raw: raw, doc: doc}
	c.bytes += len(raw)
}

func (c *twinCache) remove(id Identity, e cachedTwin) {
	delete(c.m, id)
	c.bytes -= len(e.raw)
}
