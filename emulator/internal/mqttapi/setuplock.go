// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"slices"
	"sync"
)

// setupLocks serialise the setup of authenticated connections that share
// a client id, up to their CONNACK (see hook.OnConnect). Waiters are
// served in the order they asked, so of CONNECTs that overlap, the last
// authenticated wins, as the hub's rule "the new connection wins" (§3.3)
// has it. The zero value is ready to use.
type setupLocks struct {
	mu sync.Mutex
	// queues holds, per client id, the holder's turn first and then the
	// waiters'. Only the first turn of a queue is closed.
	queues map[string][]chan struct{}
}

// lock waits for key's turn until ctx ends. The returned unlock hands the
// lock to the next waiter; calling it again does nothing.
func (l *setupLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	turn := make(chan struct{})
	l.mu.Lock()
	if l.queues == nil {
		l.queues = map[string][]chan struct{}{}
	}
	q := append(l.queues[key], turn)
	l.queues[key] = q
	if len(q) == 1 {
		close(turn)
	}
	l.mu.Unlock()
	unlock = sync.OnceFunc(func() { l.leave(key, turn) })
	select {
	case <-turn:
		return unlock, nil
	case <-ctx.Done():
		// The turn may have come meanwhile: leave passes it on.
		unlock()
		return nil, ctx.Err()
	}
}

// leave takes turn out of key's queue, and wakes the next waiter if turn
// held the lock.
func (l *setupLocks) leave(key string, turn chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[key]
	i := slices.Index(q, turn)
	q = slices.Delete(q, i, i+1)
	if len(q) == 0 {
		delete(l.queues, key)
		return
	}
	l.queues[key] = q
	if i == 0 {
		close(q[0])
	}
}
