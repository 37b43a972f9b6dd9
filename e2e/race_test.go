// SPDX-License-Identifier: MIT

//go:build race

package e2e

// raceEnabled builds the emulator with the race detector when the tests
// run with -race: a race in the real process under real SDK traffic then
// fails the test, as the binary exits with status 66 instead of 0.
const raceEnabled = true
