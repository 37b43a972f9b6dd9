// SPDX-License-Identifier: MIT

package hub

import "sync"

// Identities that are deleted or disabled must leave nothing behind in a
// transport either: a transport may keep per-identity state across
// connections (an MQTT CleanSession=0 session keeps its subscriptions and
// in-flight messages in the broker), which the hub's own teardown of a
// live connection does not reach, and which nothing else would free.

// forgetters are the transports' callbacks for identities that are gone.
type forgetters struct {
	mu  sync.Mutex
	fns []func(match func(Identity) bool)
}

// OnForget registers fn, called after identities are deleted or disabled,
// once their live connections have been told to close, with a predicate
// that matches exactly those identities. fn must free whatever it keeps
// for them and must not call back into the hub's registry.
func (h *Hub) OnForget(fn func(match func(Identity) bool)) {
	h.forget.mu.Lock()
	h.forget.fns = append(h.forget.fns, fn)
	h.forget.mu.Unlock()
}

// forgetIdentities runs the registered callbacks for the identities match
// selects.
func (h *Hub) forgetIdentities(match func(Identity) bool) {
	h.forget.mu.Lock()
	fns := append([]func(func(Identity) bool){}, h.forget.fns...)
	h.forget.mu.Unlock()
	for _, fn := range fns {
		fn(match)
	}
}

// forgetDevice forgets a device and all its modules.
func (h *Hub) forgetDevice(deviceID string) {
	h.forgetIdentities(func(id Identity) bool { return id.DeviceID == deviceID })
}
