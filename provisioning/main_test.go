// SPDX-License-Identifier: MIT

package provisioning_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: Register
// must close its connection whatever the outcome.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
