package metrics

import (
	"runtime"
	"testing"
)

// isaclist_build_info{version, revision, goversion} is 1.
func TestBuildInfo(t *testing.T) {
	families, err := New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "isaclist_build_info" {
			continue
		}
		if len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != 1 {
			t.Fatalf("isaclist_build_info: %v", f)
		}
		labels := map[string]string{}
		for _, l := range f.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != "devel" || labels["revision"] != "unknown" || labels["goversion"] != runtime.Version() {
			t.Fatalf("labels: %v", labels)
		}
		return
	}
	t.Fatal("no isaclist_build_info")
}
