// SPDX-License-Identifier: MIT

package emulator

import (
	"errors"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Fault injection: a test makes named hub operations fail or wait, to see
// how the code under test copes with the hub's errors. Faults apply to
// every transport, since they are decided in the hub core.

// Op names a hub operation that faults can be injected into.
type Op string

// The operations faults can be injected into.
const (
	OpInvokeMethod  Op = hub.OpInvokeMethod  // service invokes a direct method
	OpGetTwin       Op = hub.OpGetTwin       // service reads a twin
	OpUpdateTwin    Op = hub.OpUpdateTwin    // service patches or replaces a twin
	OpDeviceTwin    Op = hub.OpDeviceTwin    // device reads its twin
	OpPatchReported Op = hub.OpPatchReported // device patches reported properties
	OpTelemetry     Op = hub.OpTelemetry     // device sends telemetry
	OpSendC2D       Op = hub.OpSendC2D       // service queues a cloud-to-device message
	OpRegistry      Op = hub.OpRegistry      // any registry write
	OpFileUpload    Op = hub.OpFileUpload    // device starts a file upload
	OpImportExport  Op = hub.OpImportExport  // service creates an import/export job
	OpConnect       Op = hub.OpConnect       // a device or module connects (MQTT CONNECT: refused with CONNACK 3, or 5 for a 401)
)

// Fault is what happens to one operation: it waits Delay of emulator time
// (see FastForward), then fails with Err, or proceeds when Err is nil.
type Fault struct {
	Delay time.Duration
	Err   error
}

// Reactor decides the fault, if any, for one call of op on behalf of id.
// It is called concurrently.
type Reactor func(op Op, id Identity) *Fault

// The errors the hub itself answers, for faults. Each injection gets a
// copy, so these values are never shared by two requests.
var (
	ErrThrottled     error = huberr.Throttled()                           // 429 ThrottlingException
	ErrMethodTimeout error = huberr.GatewayTimeout(30 * time.Second)      // 504 GatewayTimeout of a direct method
	ErrServerError   error = huberr.ServerError("Injected server error.") // 500 ServerError
	ErrQuotaExceeded error = huberr.IotHubQuotaExceeded()                 // 403 IotHubQuotaExceeded
)

// reactors is the chain of installed reactors; it is the hub's one Reactor.
type reactors struct {
	mu    sync.Mutex
	chain []*reactorEntry
}

type reactorEntry struct{ r Reactor }

// React implements hub.Reactor: the first reactor, in the order they were
// added, that returns a fault decides.
func (rs *reactors) React(op string, id hub.Identity) *hub.Fault {
	rs.mu.Lock()
	chain := rs.chain
	rs.mu.Unlock()
	for _, e := range chain {
		if f := e.r(Op(op), identityOf(id)); f != nil {
			return &hub.Fault{Delay: f.Delay, Err: copyErr(f.Err)}
		}
	}
	return nil
}

// copyErr gives a catalogue error its own copy: adapters may set how it is
// rendered, and two requests must not share one value.
func copyErr(err error) error {
	var he *huberr.Error
	if errors.As(err, &he) && err == error(he) {
		c := *he
		return &c
	}
	return err
}

// AddReactor adds r after the reactors already installed. For each
// operation the reactors are asked in the order they were added, and the
// first fault returned applies. The returned function removes r.
func (s *Server) AddReactor(r Reactor) (remove func()) {
	e := &reactorEntry{r: r}
	rs := &s.reactors
	rs.mu.Lock()
	rs.chain = append(append([]*reactorEntry(nil), rs.chain...), e)
	rs.mu.Unlock()
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		var keep []*reactorEntry
		for _, x := range rs.chain {
			if x != e {
				keep = append(keep, x)
			}
		}
		rs.chain = keep
	}
}

// ClearReactors removes every reactor, the throttle's too (SetThrottle).
func (s *Server) ClearReactors() {
	s.throttle.mu.Lock()
	defer s.throttle.mu.Unlock()
	s.throttle.cur, s.throttle.remove = Throttle{}, nil
	s.reactors.mu.Lock()
	s.reactors.chain = nil
	s.reactors.mu.Unlock()
}

// FailNext makes the next n calls of op, for any identity, fail with err;
// then it removes itself. It composes with other reactors: it is added
// after them. Use the hub's own errors, e.g.
// FailNext(OpPatchReported, 1, ErrThrottled).
func (s *Server) FailNext(op Op, n int, err error) {
	var mu sync.Mutex
	left := n
	var remove func()
	added := make(chan struct{})
	remove = s.AddReactor(func(o Op, _ Identity) *Fault {
		if o != op {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if left <= 0 {
			return nil
		}
		left--
		if left == 0 {
			go func() { <-added; remove() }()
		}
		return &Fault{Err: err}
	})
	close(added)
}

// SetReactor replaces every installed reactor with f (nil: none).
//
// Deprecated: use AddReactor, which composes with FailNext, and
// ClearReactors.
func (s *Server) SetReactor(f func(op Op, id Identity) *Fault) {
	s.ClearReactors()
	if f != nil {
		s.AddReactor(f)
	}
}
