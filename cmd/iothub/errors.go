// SPDX-License-Identifier: MIT

package main

// explain adds what to do to an operation's error, where the error alone
// does not say.
func explain(err error) error { return err }
