// SPDX-License-Identifier: MIT

package mqttapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestDisconnectedSessionsExpire: a disconnected CleanSession=0 session is
// kept until sessionExpiry, and at most maxSessions of them; an expired
// one leaves nothing in the topic tree, and the device's next connection
// starts a fresh session. A connected device's session is never dropped.
func TestDisconnectedSessionsExpire(t *testing.T) {
	e := newEnv(t)
	const n = 4
	var ids []hub.Identity
	keys := map[hub.Identity]string{}
	for i := range n {
		id := hub.Identity{DeviceID: fmt.Sprintf("dev%d", i)}
		keys[id] = e.addDevice(t, id.DeviceID)
		ids = append(ids, id)
		d, _ := e.connectPersistent(t, id, keys[id], false)
		d.subscribeAll(t, filterMethods, filterDesired)
		if i == n-1 {
			break // stays connected
		}
		if _, err := d.Write([]byte{0xe0, 0}); err != nil { // DISCONNECT
			t.Fatal(err)
		}
		eventually(t, "disconnected", func() bool { return !e.hub.IsConnected(id) })
	}
	kept := func() int {
		n := 0
		for _, cl := range e.srv.mochi.Clients.GetAll() {
			if !cl.Net.Inline {
				n++
			}
		}
		return n
	}
	if got := kept(); got != n {
		t.Fatalf("mochi holds %d sessions, want %d", got, n)
	}
	// Within the expiry and the bound: nothing is freed.
	if freed := e.srv.expireSessions(time.Now()); freed != 0 {
		t.Fatalf("freed %d sessions within their expiry", freed)
	}
	// Beyond the bound: one of the three disconnected goes.
	e.srv.maxSessions = 2
	if freed := e.srv.expireSessions(time.Now()); freed != 1 {
		t.Fatalf("freed %d sessions over a bound of 2 disconnected, want 1", freed)
	}
	// Beyond the expiry: every disconnected one.
	e.srv.maxSessions = defaultMaxSessions
	if freed := e.srv.expireSessions(time.Now().Add(defaultSessionExpiry + time.Minute)); freed != 2 {
		t.Fatalf("freed %d expired sessions, want 2", freed)
	}
	if got := kept(); got != 1 {
		t.Fatalf("mochi holds %d sessions, want the connected device's only", got)
	}
	if subs := e.srv.mochi.Topics.Subscribers("$iothub/methods/POST/m/?$rid=1").Subscriptions; len(subs) != 1 {
		t.Fatalf("got %d method subscriptions in the topic tree, want the connected device's only: %v", len(subs), subs)
	}
	if _, present := e.connectPersistent(t, ids[0], keys[ids[0]], false); present {
		t.Error("the next connection of an expired session: session present; want a fresh session")
	}
}
