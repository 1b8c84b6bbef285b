// Package version says which isaclist this is. The build script sets the
// three variables with
//
//	go build -ldflags "-X github.com/isaclist/isaclist/internal/version.version=v1.2.3
//	    -X github.com/isaclist/isaclist/internal/version.commit=0a1b2c3...
//	    -X github.com/isaclist/isaclist/internal/version.date=2026-12-07T10:00:00Z"
//
// (deploy/build-deb does); otherwise they come from what the Go toolchain
// recorded in the binary (runtime/debug.ReadBuildInfo): the module version
// of `go install ...@v1.2.3`, and the commit of a build in a git checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X); empty in a plain `go build`.
var (
	version = ""
	commit  = ""
	date    = ""
)

// Info is this binary's version, commit, build date and Go version.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goversion"`
}

// Get returns the build's Info; what is not known is "unknown" (the
// version of a build from a plain checkout is "devel").
func Get() Info {
	return get(version, commit, date, debug.ReadBuildInfo)
}

func get(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	modified := false
	if bi, ok := read(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && c != "" && c == settingOf(bi, "vcs.revision") {
			c += "+dirty"
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
}

func settingOf(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// String is the one-line form `isaclist version` prints, e.g.
// "isaclist v1.2.3 (commit 0a1b2c3, built 2026-12-07T10:00:00Z, go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("isaclist %s (commit %s, built %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion)
}
