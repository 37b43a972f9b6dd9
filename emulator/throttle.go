// SPDX-License-Identifier: MIT

package emulator

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/restapi"
)

// Throttle is the hub-wide throttling switch, for load tests: a share of
// the chosen operations, every device's and the service's alike, is
// refused with the hub's throttling or quota error. Each transport answers
// a refusal as it answers the hub's errors: REST with 429
// ThrottlingException or 403 IotHubQuotaExceeded, MQTT CONNECT with
// CONNACK 3, an MQTT twin request on $iothub/twin/res/{status}, MQTT
// telemetry by closing the connection (MQTT 3.1.1 has no negative
// PUBACK).
type Throttle struct {
	// Rate is the share of matching operations refused, from 0 (off) to
	// 1 (all). Refusals are spread evenly and predictably: 0.25 refuses
	// every fourth operation, 0.5 every other one.
	Rate float64
	Err  error // ErrThrottled (when nil) or ErrQuotaExceeded, or any hub error
	Ops  []Op  // the operations it applies to; nil: all of them
}

type throttleState struct {
	mu     sync.Mutex
	cur    Throttle
	remove func() // removes the current throttle's reactor
}

// SetThrottle replaces the throttle (a Rate of 0 turns it off). It is a
// reactor like the others (AddReactor), added after those installed
// before it; ClearReactors removes it too, and Reset leaves it.
func (s *Server) SetThrottle(t Throttle) error {
	if math.IsNaN(t.Rate) || t.Rate < 0 || t.Rate > 1 {
		return fmt.Errorf("emulator: throttle rate %v is not between 0 and 1", t.Rate)
	}
	for _, op := range t.Ops {
		if !slices.Contains(hub.Ops(), string(op)) {
			return fmt.Errorf("emulator: %q is not an operation faults can be injected into (%v)", op, hub.Ops())
		}
	}
	if t.Err == nil {
		t.Err = ErrThrottled
	}
	t.Ops = slices.Clone(t.Ops)
	ts := &s.throttle
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.remove != nil {
		ts.remove()
		ts.remove = nil
	}
	ts.cur = t
	if t.Rate == 0 {
		ts.cur = Throttle{}
		return nil
	}
	var mu sync.Mutex
	var due float64 // refusals owed: Rate per call, one paid per refusal
	ts.remove = s.AddReactor(func(op Op, _ Identity) *Fault {
		if t.Ops != nil && !slices.Contains(t.Ops, op) {
			return nil
		}
		mu.Lock()
		due += t.Rate
		// The tolerance lets 0.1 ten times add up to a refusal.
		refuse := due >= 1-1e-9
		if refuse {
			due--
		}
		mu.Unlock()
		if !refuse {
			return nil
		}
		return &Fault{Err: t.Err}
	})
	return nil
}

// Throttling returns the throttle in force; its Rate is 0 when off.
func (s *Server) Throttling() Throttle {
	s.throttle.mu.Lock()
	defer s.throttle.mu.Unlock()
	t := s.throttle.cur
	t.Ops = slices.Clone(t.Ops)
	return t
}

// throttleControl serves the throttle to the control route
// (/emulator/throttle), which names errors by their code.
type throttleControl struct{ s *Server }

var _ restapi.Throttler = throttleControl{}

func (c throttleControl) SetThrottle(ts restapi.ThrottleSettings) error {
	t := Throttle{Rate: ts.Rate}
	switch ts.ErrorCode {
	case "", "ThrottlingException":
		t.Err = ErrThrottled
	case "IotHubQuotaExceeded":
		t.Err = ErrQuotaExceeded
	default:
		return huberr.ArgumentInvalid("errorCode must be ThrottlingException or IotHubQuotaExceeded; got '%s'.", ts.ErrorCode)
	}
	for _, op := range ts.Operations {
		t.Ops = append(t.Ops, Op(op))
	}
	if err := c.s.SetThrottle(t); err != nil {
		return huberr.ArgumentInvalid("%s", err.Error())
	}
	return nil
}

func (c throttleControl) Throttle() restapi.ThrottleSettings {
	t := c.s.Throttling()
	out := restapi.ThrottleSettings{Rate: t.Rate, Operations: []string{}}
	if t.Rate == 0 {
		return out
	}
	var he *huberr.Error
	if errors.As(t.Err, &he) {
		out.ErrorCode = he.Name
	}
	for _, op := range t.Ops {
		out.Operations = append(out.Operations, string(op))
	}
	return out
}
