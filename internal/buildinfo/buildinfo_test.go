// SPDX-License-Identifier: MIT

package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{
			name: "tagged release",
			bi: debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "m", Version: "v1.2.0"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "1707eb5c0d2e4f6a8b9c0d1e2f3a4b5c6d7e8f90"},
				{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"},
				{Key: "vcs.modified", Value: "false"},
			}},
			want: "v1.2.0 (revision 1707eb5c0d2e, 2026-05-01T10:00:00Z, go1.26.1)",
		},
		{
			name: "checkout with changes",
			bi: debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "m", Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"},
			}},
			want: "(devel) (revision abc with local changes, go1.26.1)",
		},
		{
			name: "no VCS information",
			bi:   debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "m"}},
			want: "(devel) (revision unknown, go1.26.1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromBuildInfo(&tt.bi).String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadInTest reads the test binary's own build information, which the
// toolchain always embeds.
func TestReadInTest(t *testing.T) {
	i := Read()
	if i.GoVersion == "" || i.Version == "" {
		t.Errorf("Read() = %+v, want a Go version and a module version", i)
	}
}
