// SPDX-License-Identifier: MIT

package mqttapi

import (
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// mochi keeps a CleanSession=0 session (its client, subscriptions and
// in-flight messages) after the connection ends, for as long as
// Capabilities.MaximumSessionExpiryInterval, whose default is forever;
// its own expiry also leaves the subscriptions in the topic tree. The
// hub's retention of such a session is not documented. The emulator
// keeps a disconnected session for sessionExpiry, as long as the longest
// cloud-to-device TTL (48 h), beyond which nothing could wait in it, and
// at most maxSessions of them, the longest disconnected dropped first.
// The SDKs subscribe on every connection, so a device whose session is
// gone loses nothing it does not ask for again.
const (
	defaultSessionExpiry = 48 * time.Hour
	defaultMaxSessions   = 100_000
	sessionSweep         = time.Minute
)

// sweepSessions runs until Close, freeing expired sessions once per
// sessionSweep.
func (s *Server) sweepSessions() {
	t := time.NewTicker(sessionSweep)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.expireSessions(now)
		}
	}
}

// expireSessions frees the disconnected sessions older than sessionExpiry
// at now, and the oldest beyond maxSessions. It returns how many.
func (s *Server) expireSessions(now time.Time) int {
	type kept struct {
		id      string
		cl      *mqtt.Client
		cc      *clientConn
		stopped int64
	}
	var idle []kept
	for id, cl := range s.mochi.Clients.GetAll() {
		stopped := cl.StopTime()
		sess := sessionOf(cl)
		if stopped == 0 || sess == nil || cl.Net.Inline {
			continue
		}
		idle = append(idle, kept{id, cl, sess.cc, stopped})
	}
	slices.SortFunc(idle, func(a, b kept) int { return int(a.stopped - b.stopped) })
	cutoff := now.Add(-s.sessionExpiry).Unix()
	freed := 0
	for i, k := range idle {
		if k.stopped >= cutoff && len(idle)-i <= s.maxSessions {
			break
		}
		s.freeClient(k.id, k.cl, k.cc)
		freed++
	}
	if freed > 0 {
		s.log.Debug("mqtt sessions expired", "freed", freed, "kept", len(idle)-freed)
	}
	return freed
}
