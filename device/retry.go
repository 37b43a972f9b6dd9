// SPDX-License-Identifier: MIT

package device

import (
	"errors"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// RetryPolicy decides how the client reconnects after the connection drops.
// The first reconnection attempt is immediate (as in the Node SDK); Delay is
// consulted after each failed attempt. The service package's RetryPolicy
// has the same method, so one policy value can serve both clients.
//
// A refused CONNECT for bad credentials (CONNACK 4 or 5) yields an error
// matching ErrUnauthorized: the device was deleted or disabled, its key
// changed, or a SAS token given to the client expired. Repeating the
// attempt cannot help, so ExponentialBackoff stops on it, as the Node SDK's
// default error filter does; a policy of its own may go on (for example
// while the application fetches a token for UpdateSASToken).
//
// A hub certificate that cannot be verified (an untrusted CA, a host name
// it does not hold) ends reconnection without consulting the policy: the
// same failure would repeat until someone changes what the client trusts.
type RetryPolicy interface {
	// Delay returns the wait before the next attempt, given the number of
	// failed attempts so far (1 after the first failure) and the error of
	// the last one. ok false stops reconnecting; the client then reports
	// StateDisconnected with err, and operations fail with ErrNotConnected
	// wrapping err.
	Delay(failures int, err error) (d time.Duration, ok bool)
}

// ExponentialBackoff doubles the delay after each failure, up to Max, and
// randomises it by ±Jitter so that many devices dropped together do not
// reconnect in lockstep. It never retries an error matching
// ErrUnauthorized (see RetryPolicy). Zero fields take the defaults noted
// below.
type ExponentialBackoff struct {
	Initial     time.Duration // delay after the first failure; default 1s
	Max         time.Duration // upper bound on the delay; default 60s
	Jitter      float64       // relative randomisation in [0, 1]; default 0.25
	MaxFailures int           // give up after this many failures; 0 retries forever
}

// Delay implements RetryPolicy.
func (b ExponentialBackoff) Delay(failures int, err error) (time.Duration, bool) {
	if errors.Is(err, ErrUnauthorized) || (b.MaxFailures > 0 && failures >= b.MaxFailures) {
		return 0, false
	}
	initial, limit, jitter := b.Initial, b.Max, b.Jitter
	if initial <= 0 {
		initial = time.Second
	}
	if limit <= 0 {
		limit = time.Minute
	}
	if jitter <= 0 || jitter > 1 {
		jitter = 0.25
	}
	return wire.Backoff(failures, initial, limit, jitter), true
}

// NoRetry is the policy WithoutRetries sets.
//
// Deprecated: use WithoutRetries(), the option the service package has
// too.
var NoRetry RetryPolicy = noRetry{}

// noRetry never reconnects: after a drop the client reports
// StateDisconnected at once, without the immediate first attempt that other
// policies get.
type noRetry struct{}

func (noRetry) Delay(int, error) (time.Duration, bool) { return 0, false }
