// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"testing"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// FuzzImportJobLine feeds arbitrary lines of an import file (read from a
// blob, so from outside) to the import: each is applied or refused with an
// error of the hub's catalogue, never a panic or an internal error.
func FuzzImportJobLine(f *testing.F) {
	for _, s := range []string{
		`{"id":"d1","status":"enabled"}`,
		`{"id":"d1","importMode":"createOrUpdateIfMatchETag","status":"disabled","eTag":"x"}`,
		`{"id":"d1","moduleId":"m","importMode":"create"}`,
		`{"id":"d1","importMode":"updateTwin","status":"enabled","tags":{"a":1},"properties":{"desired":{"$metadata":{},"$version":3,"x":1}}}`,
		`{"id":"d1","importMode":"delete","status":"enabled"}`,
		`{"id":"","status":"enabled"}`,
		`not json`,
		`{"id":"d1","status":"enabled","properties":{"desired":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	db, err := store.OpenTemp()
	if err != nil {
		f.Fatal(err)
	}
	h, err := New(db, Config{HostName: "hub.example", Policies: DefaultPolicies("SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE=")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close(); db.Close() })
	f.Fuzz(func(t *testing.T, line []byte) {
		err := h.importJobLine(context.Background(), line)
		if err == nil {
			return
		}
		if he := huberr.As(err); he.Status >= 500 {
			t.Fatalf("%q: %v", line, err)
		}
	})
}
