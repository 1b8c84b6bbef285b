package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/internal/version"
)

// `isaclist --version` and `isaclist version` print the same line, with
// the Go version; --json gives the fields.
func TestVersion(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		root := newRoot(&out, &errOut)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("isaclist %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	want := version.Get().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if got := run(args...); got != want {
			t.Errorf("isaclist %v = %q, want %q", args, got, want)
		}
	}
	if !strings.Contains(want, " go1.") {
		t.Errorf("no Go version in %q", want)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(run("version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "commit", "date", "goversion"} {
		if v[k] == "" {
			t.Errorf("version --json lacks %s: %v", k, v)
		}
	}
	if help := run("version", "--help"); !strings.Contains(help, "isaclist --version") {
		t.Errorf("version --help has no example:\n%s", help)
	}
}

// The daemon's start-up log line and /metrics say which version runs.
func TestVersionInLogAndMetrics(t *testing.T) {
	addr := freePort(t)
	w := newWorld(t, worldOpts{metrics: addr, noList: true})
	if !strings.Contains(w.logs.String(), `msg="isaclist started" version=`+version.Get().Version) {
		t.Errorf("start-up line without the version:\n%s", w.logs.String())
	}
	_, body := get(t, "http://"+addr+"/metrics")
	if !strings.Contains(body, `isaclist_build_info{goversion="go1.`) {
		t.Errorf("/metrics has no isaclist_build_info")
	}
	out, _ := w.run("doctor") // the test world fails some checks (no A record)
	if !strings.Contains(out, version.Get().String()) {
		t.Errorf("doctor does not say its version:\n%s", out)
	}
}
