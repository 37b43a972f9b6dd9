// SPDX-License-Identifier: MIT

//go:build race

package mqttapi

// stackScale is how much deeper goroutine stacks are under the race
// detector, whose instrumented frames and guard are larger.
const stackScale = 2
