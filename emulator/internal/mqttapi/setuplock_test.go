// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// queued reports how many turns key's queue holds, the holder's included.
func (l *setupLocks) queued(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queues[key])
}

// lockInBackground asks for key's lock and reports name once it has it,
// after waiting until the request is queued behind want-1 others.
func lockInBackground(t *testing.T, l *setupLocks, key, name string, want int, got chan<- string) {
	t.Helper()
	go func() {
		unlock, err := l.lock(context.Background(), key)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- name
		unlock()
	}()
	eventually(t, name+" queued", func() bool { return l.queued(key) == want })
}

func TestSetupLocksServeInOrder(t *testing.T) {
	var l setupLocks
	unlock, err := l.lock(context.Background(), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.lock(context.Background(), "dev2")
	if err != nil {
		t.Fatalf("another client id's lock: %v", err)
	}
	other()
	got := make(chan string, 3)
	for i, name := range []string{"first", "second", "third"} {
		lockInBackground(t, &l, "dev1", name, i+2, got)
	}
	unlock()
	unlock() // a second call must not hand the lock on again
	var order []string
	for range 3 {
		select {
		case name := <-got:
			order = append(order, name)
		case <-time.After(waitTime):
			t.Fatalf("waiters served: %v, want 3", order)
		}
	}
	if diff := cmp.Diff([]string{"first", "second", "third"}, order); diff != "" {
		t.Errorf("order of the waiters (-want +got):\n%s", diff)
	}
	eventually(t, "the queue to go", func() bool { return l.queued("dev1") == 0 })
}

func TestSetupLocksWaiterGivesUp(t *testing.T) {
	tests := []struct {
		name  string
		ahead int // waiters queued before the one that gives up
	}{
		{name: "next in line", ahead: 0},
		{name: "behind another", ahead: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l setupLocks
			unlock, err := l.lock(context.Background(), "dev1")
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, tt.ahead+1)
			for i := range tt.ahead {
				lockInBackground(t, &l, "dev1", "ahead", i+2, got)
			}
			ctx, cancel := context.WithCancel(context.Background())
			gaveUp := make(chan error, 1)
			go func() {
				_, err := l.lock(ctx, "dev1")
				gaveUp <- err
			}()
			eventually(t, "the impatient waiter queued", func() bool { return l.queued("dev1") == tt.ahead+2 })
			lockInBackground(t, &l, "dev1", "last", tt.ahead+3, got)
			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Fatalf("lock after its context ended: got %v, want %v", err, context.Canceled)
			}
			unlock()
			for range tt.ahead + 1 {
				select {
				case <-got:
				case <-time.After(waitTime):
					t.Fatal("a waiter behind the one that gave up never got the lock")
				}
			}
			eventually(t, "the queue to go", func() bool { return l.queued("dev1") == 0 })
		})
	}
}
