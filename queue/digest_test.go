package queue

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/store"
)

// A digest of many failures stays short: DigestLines listed, the rest
// counted for at most ten named recipients, whatever the number of
// failures; and it names no subject (it has none to name).
func TestDigestIsBounded(t *testing.T) {
	r := &Runner{Hostname: "lists.example.net", ReportInterval: time.Hour}
	l := &store.List{Address: testList, Name: "Test", Owners: []string{"owner@example.org"}}
	dg := &store.Digest{List: testList}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 5000 {
		dg.Add(store.FailedCopy{At: at, MessageID: fmt.Sprintf("m%d", i), Kind: store.KindPost, Rcpt: fmt.Sprintf("m%d@example.org", i%300),
			Attempts: 1, Reply: "550 5.1.1 no such user", Why: "the receiving server refused it"})
	}
	if len(dg.Failures) != store.DigestLines || dg.More != 5000-store.DigestLines || len(dg.MoreRcpts) > store.DigestRcpts+1 {
		t.Fatalf("digest holds %d lines, %d more, %d recipients counted", len(dg.Failures), dg.More, len(dg.MoreRcpts))
	}
	n := r.digestNotice(l, dg)
	if !strings.Contains(n.Subject, "5000 copies") || len(n.To) != 1 {
		t.Errorf("notice %q to %v", n.Subject, n.To)
	}
	if lines := strings.Count(n.Text, "\n- 2026"); lines != store.DigestLines {
		t.Errorf("%d lines listed", lines)
	}
	more := n.Text[strings.Index(n.Text, "\n- and "):]
	more = more[:strings.Index(more[1:], "\n")+1]
	if !strings.Contains(more, "4950 more") || strings.Count(more, "@") != 10 || !strings.Contains(more, "other recipients") {
		t.Errorf("summary: %s", more)
	}
	if len(n.Text) > 16<<10 {
		t.Errorf("the notice is %d bytes", len(n.Text))
	}
}

// A first failure after a quiet interval waits a minute (or the interval,
// if shorter) for its burst; later ones wait for the interval since the
// last report.
func TestDigestDue(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		interval       time.Duration
		lastSent, want time.Time
	}{
		{time.Hour, time.Time{}, t0.Add(time.Minute)},
		{time.Hour, t0.Add(-2 * time.Hour), t0.Add(time.Minute)},
		{time.Hour, t0.Add(-10 * time.Minute), t0.Add(50 * time.Minute)},
		{10 * time.Second, time.Time{}, t0.Add(10 * time.Second)},
		{0, t0.Add(-time.Second), t0},
	} {
		r := &Runner{ReportInterval: tc.interval}
		dg := &store.Digest{LastSent: tc.lastSent}
		if !r.digestDue(dg).IsZero() {
			t.Errorf("an empty digest is due")
		}
		dg.Add(store.FailedCopy{At: t0})
		if got := r.digestDue(dg); !got.Equal(tc.want) {
			t.Errorf("interval %s, last sent %s: due %s, want %s", tc.interval, tc.lastSent, got, tc.want)
		}
	}
}
