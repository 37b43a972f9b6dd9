// SPDX-License-Identifier: MIT

package device

import "testing"

// TestFirstAsk checks that the application is asked once per token, and not
// for a token it has already replaced.
func TestFirstAsk(t *testing.T) {
	cr := &credentials{token: "first"}
	steps := []struct {
		name    string
		replace string // UpdateSASToken before the step; "" for none
		session string // the token the asking session connected with
		want    bool
	}{
		{name: "renewal time of the first token", session: "first", want: true},
		{name: "again after a reconnect with the same token", session: "first", want: false},
		// The old session's renewal fires after UpdateSASToken but before
		// the reconnect that uses the new token.
		{name: "old session after the token was replaced", replace: "second", session: "first", want: false},
		{name: "renewal time of the second token", session: "second", want: true},
	}
	for _, st := range steps {
		if st.replace != "" {
			cr.mu.Lock()
			cr.token = st.replace
			cr.mu.Unlock()
		}
		if got := cr.firstAsk(st.session); got != st.want {
			t.Errorf("%s: firstAsk(%q) = %v, want %v", st.name, st.session, got, st.want)
		}
	}
}
