// SPDX-License-Identifier: MIT

// Package buildinfo describes the running binary from the build information
// the Go toolchain embeds: the module version (a tag such as v1.2.0 for
// `go install ...@v1.2.0`, a pseudo-version or "(devel)" for a checkout) and
// the VCS revision, so that `--version` needs no release-time flags.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info is what a binary knows about its own build.
type Info struct {
	Path      string // main module path
	Version   string // module version; "(devel)" for a build from a checkout without a tag
	Revision  string // VCS revision; "" when the build had no VCS information (-buildvcs=false, no .git)
	Time      string // commit time of Revision (RFC 3339), or ""
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string // toolchain, e.g. go1.26.1
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(devel)"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Path: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String formats i on one line, e.g.
//
//	v1.2.0 (revision 1707eb5c0d2e, 2026-05-01T10:00:00Z, go1.26.1)
//	(devel) (revision unknown, go1.26.1)
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	b.WriteString(" (revision ")
	switch {
	case i.Revision == "":
		b.WriteString("unknown")
	case len(i.Revision) > 12:
		b.WriteString(i.Revision[:12])
	default:
		b.WriteString(i.Revision)
	}
	if i.Modified {
		b.WriteString(" with local changes")
	}
	if i.Time != "" {
		b.WriteString(", " + i.Time)
	}
	if i.GoVersion != "" {
		b.WriteString(", " + i.GoVersion)
	}
	b.WriteString(")")
	return b.String()
}

// Line is the version line a command prints: its name, then String.
func (i Info) Line(command string) string {
	return fmt.Sprintf("%s %s", command, i)
}
