// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"sync"
)

// serial runs functions one at a time, in push order, on a goroutine that
// exists only while work is pending, so an idle client holds no goroutines
// for its handlers.
type serial struct {
	mu      sync.Mutex
	items   []func()
	running bool
}

// push queues f. c.mu must be held and c not closed (see goLocked).
func (q *serial) push(c *Client, f func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, f)
	if !q.running {
		q.running = true
		c.goLocked(q.drain)
	}
}

func (q *serial) drain() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		f()
	}
}

// inbox is an unbounded FIFO for the Receive* calls. Several receivers may
// wait at once; each item goes to exactly one.
type inbox[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{} // holds a token while items may be waiting
}

func newInbox[T any]() *inbox[T] {
	return &inbox[T]{signal: make(chan struct{}, 1)}
}

func (b *inbox[T]) put(v T) {
	b.mu.Lock()
	b.items = append(b.items, v)
	b.mu.Unlock()
	b.notify()
}

func (b *inbox[T]) notify() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// remove takes out the items that match, oldest first, and leaves the
// others queued in their order. It hands queued items to a handler that was
// registered after they arrived.
func (b *inbox[T]) remove(match func(T) bool) []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []T
	kept := b.items[:0]
	for _, v := range b.items {
		if match(v) {
			out = append(out, v)
		} else {
			kept = append(kept, v)
		}
	}
	clear(b.items[len(kept):]) // drop references to the items taken
	b.items = kept
	return out
}

// all matches every item, for remove.
func all[T any](T) bool { return true }

// take removes the oldest item, waiting until one arrives, ctx ends
// (context.Cause) or closed is closed (ErrClosed).
func (b *inbox[T]) take(ctx context.Context, closed <-chan struct{}) (T, error) {
	for {
		b.mu.Lock()
		if len(b.items) > 0 {
			v := b.items[0]
			var zero T
			b.items[0] = zero
			b.items = b.items[1:]
			more := len(b.items) > 0
			b.mu.Unlock()
			if more {
				b.notify() // pass the wake-up on to another receiver
			}
			return v, nil
		}
		b.mu.Unlock()
		select {
		case <-b.signal:
		case <-ctx.Done():
			var zero T
			return zero, context.Cause(ctx)
		case <-closed:
			var zero T
			return zero, ErrClosed
		}
	}
}
