package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestLinkerValuesWin(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.0.9"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "fromvcs"}}}, true
	}
	got := get("v1.2.3", "abc123", "2026-12-07T10:00:00Z", read)
	want := Info{Version: "v1.2.3", Commit: "abc123", Date: "2026-12-07T10:00:00Z", GoVersion: runtime.Version()}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestBuildInfoFallback(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0a1b2c3d"}, {Key: "vcs.time", Value: "2026-11-27T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	got := get("", "", "", read)
	if got.Version != "v1.4.0" || got.Commit != "0a1b2c3d+dirty" || got.Date != "2026-11-27T10:00:00Z" {
		t.Fatalf("got %+v", got)
	}
	// A plain `go build` in a checkout without VCS stamping.
	got = get("", "", "", func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true })
	if got.Version != "devel" || got.Commit != "unknown" || got.Date != "unknown" {
		t.Fatalf("got %+v", got)
	}
	if s := got.String(); !strings.HasPrefix(s, "isaclist devel (commit unknown, built unknown, go") {
		t.Fatalf("String() = %q", s)
	}
}
