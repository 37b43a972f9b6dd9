// SPDX-License-Identifier: MIT

package hub

import "testing"

func TestRecordingsKeepTheNewest(t *testing.T) {
	var s []int
	for i := range 3*maxRecords + 7 {
		s = appendBounded(s, i)
	}
	got := newest(s)
	if len(got) != maxRecords {
		t.Fatalf("kept %d records, want %d", len(got), maxRecords)
	}
	if got[0] != 2*maxRecords+7 || got[len(got)-1] != 3*maxRecords+6 {
		t.Fatalf("kept records %d..%d, want %d..%d", got[0], got[len(got)-1], 2*maxRecords+7, 3*maxRecords+6)
	}
}
