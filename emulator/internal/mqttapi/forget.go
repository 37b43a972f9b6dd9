// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// forget frees what mochi keeps of identities the hub has deleted or
// disabled (hub.OnForget). mochi keeps a CleanSession=0 client, with its
// subscriptions in the topic tree and its in-flight messages, after its
// connection ends, until a connection of the same client id replaces it;
// for an identity that is gone none ever will.
//
// The clients are picked now, and freed on a goroutine of their own: the
// hub calls this holding the identity's lock, while a connection being
// ended or set up may need that lock before it finishes. A client that has
// been replaced meanwhile, by a newer connection of a re-created identity,
// is the newer connection's business and is left alone.
func (s *Server) forget(match func(hub.Identity) bool) {
	for clientID, cl := range s.mochi.Clients.GetAll() {
		sess := sessionOf(cl)
		if sess == nil || !match(sess.id) {
			continue
		}
		if !s.goTracked(func() { s.freeClient(clientID, cl, sess.cc) }) {
			return
		}
	}
}

// goTracked runs f on a goroutine that Close waits for; false when closing.
func (s *Server) goTracked(f func()) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Go(f)
	return true
}

// freeClient waits for cl's connection to end (the hub has asked it to
// close) and removes cl from mochi, unless a newer connection of the
// client id has replaced it.
func (s *Server) freeClient(clientID string, cl *mqtt.Client, cc *clientConn) {
	select {
	case <-cc.done:
	case <-s.ctx.Done():
		return
	}
	// The setup lock keeps a CONNECT of the same client id from taking
	// cl over while it is removed.
	ctx, cancel := context.WithTimeout(s.ctx, setupWait)
	unlock, err := s.setup.lock(ctx, clientID)
	cancel()
	if err != nil {
		return
	}
	defer unlock()
	if cur, ok := s.mochi.Clients.Get(clientID); !ok || cur != cl {
		return
	}
	s.mochi.UnsubscribeClient(cl)
	cl.ClearInflights()
	s.mochi.Clients.Delete(clientID)
	s.log.Debug("mqtt session freed", "clientId", clientID)
}
