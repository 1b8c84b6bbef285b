package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

const owner = "secretary@member-c.example"

// setReportInterval rewrites [delivery] report_interval of a stopped
// world's configuration.
func (w *world) setReportInterval(t *testing.T, d string) {
	t.Helper()
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^report_interval = ".*"$`)
	if !re.Match(cfg) {
		t.Fatal("no report_interval in the configuration")
	}
	cfg = re.ReplaceAll(cfg, []byte(`report_interval = "`+d+`"`))
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ownerReport is one mail to the owner about failed copies.
type ownerReport struct {
	at     time.Time
	copies int // how many failures it reports
	lines  int // failures listed one a line
	more   bool
	data   []byte
}

var (
	digestSubject = regexp.MustCompile(`Subject: \[Energy ISAC\] (\d+) copies could not be delivered`)
	singleSubject = regexp.MustCompile(`Subject: \[Energy ISAC\] a copy to \S+ failed`)
)

func ownerReports(t *testing.T, msgs []testmail.Received) []ownerReport {
	t.Helper()
	var out []ownerReport
	for _, m := range msgs {
		if len(m.To) != 1 || m.To[0] != owner {
			continue
		}
		if m.From != "" {
			t.Errorf("a report to the owner came from %q; notices use <>", m.From)
		}
		r := ownerReport{at: m.At, data: m.Data}
		switch {
		case digestSubject.Match(m.Data):
			r.copies, _ = strconv.Atoi(string(digestSubject.FindSubmatch(m.Data)[1]))
			r.lines = bytes.Count(m.Data, []byte("\n- 20"))
			r.more = bytes.Contains(m.Data, []byte("\n- and "))
		case singleSubject.Match(m.Data):
			r.copies, r.lines = 1, 1
		default:
			t.Errorf("unexpected mail to the owner:\n%.800s", m.Data)
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestOwnerReportsAreDigests (issue 11 item 6): a relay that refuses every
// member's copy fails 207 copies; the owner gets one mail per
// report_interval listing them (50 one a line, the rest counted per
// recipient), never a subject or a body. A report pending when the daemon
// stops is sent after its restart.
func TestOwnerReportsAreDigests(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.stop()
	const interval = 3 * time.Second
	w.setReportInterval(t, interval.String())
	w.start()

	// The relay is busy until every post is in, then refuses every copy
	// to a member: the failures come in one burst.
	refuse := func(code int, enh smtp.EnhancedCode, text string) {
		w.sink.SetReject(func(rcpt string) *smtp.SMTPError {
			if rcpt == owner {
				return nil
			}
			return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
		})
	}
	refuse(451, smtp.EnhancedCode{4, 3, 0}, "busy")
	const perMember = 23
	members := []string{"alice@member-a.example", "bob@member-b.example", "carol@member-c.example"}
	var wg sync.WaitGroup
	for _, from := range members {
		wg.Go(func() {
			for i := range perMember {
				msg := sandbox.Message{Subject: fmt.Sprintf("[TLP:GREEN] digest-subject-%s-%d", from[:3], i), Body: "digest-body-text\n"}
				if _, err := w.post(from, msg); err != nil {
					t.Errorf("post %d of %s: %v", i, from, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	failed := len(members) * perMember * len(members)
	refuse(550, smtp.EnhancedCode{5, 1, 1}, "no such user here")
	start := time.Now()

	var reports []ownerReport
	total := 0
	for deadline := time.Now().Add(60 * time.Second); total < failed; {
		if time.Now().After(deadline) {
			t.Fatalf("the owner heard of %d of %d failed copies in %d mails\n%s", total, failed, len(reports), w.mustRun("queue", "list"))
		}
		time.Sleep(100 * time.Millisecond)
		reports = ownerReports(t, w.sink.Messages())
		total = 0
		for _, r := range reports {
			total += r.copies
		}
	}
	took := time.Since(start)
	if total != failed {
		t.Errorf("the reports count %d failed copies, want %d", total, failed)
	}
	// One mail per interval, the first after the burst's minute (here the
	// interval, which is shorter).
	if max := int(took/interval) + 1; len(reports) > max {
		t.Errorf("%d reports in %s, more than one per %s", len(reports), took.Round(time.Millisecond), interval)
	}
	for i, r := range reports {
		if i > 0 && r.at.Sub(reports[i-1].at) < interval-500*time.Millisecond {
			t.Errorf("report %d came %s after the one before, within report_interval %s", i, r.at.Sub(reports[i-1].at), interval)
		}
		if r.lines > 50 || len(r.data) > 24<<10 || (r.copies > r.lines) != r.more {
			t.Errorf("report %d: %d copies, %d lines, more %v, %d bytes:\n%s", i, r.copies, r.lines, r.more, len(r.data), r.data)
		}
		for _, secret := range []string{"digest-subject", "digest-body-text"} {
			if bytes.Contains(r.data, []byte(secret)) {
				t.Errorf("report %d quotes a post (%q):\n%s", i, secret, r.data)
			}
		}
	}
	if !reports[0].more || !bytes.Contains(reports[0].data, []byte("550 5.1.1")) {
		t.Errorf("the first report does not summarise the burst:\n%s", reports[0].data)
	}
	t.Logf("%d failed copies reported in %d mails over %s (interval %s); the first listed %d and counted %d more",
		failed, len(reports), took.Round(time.Millisecond), interval, reports[0].lines, reports[0].copies-reports[0].lines)

	// A report pending when the daemon stops survives it: with a long
	// interval the failures of one more post wait; restarted with a short
	// one, the daemon sends them.
	w.stop()
	w.setReportInterval(t, "1h")
	w.start()
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] digest-subject-last", Body: "digest-body-text\n"}); err != nil {
		t.Fatal(err)
	}
	w.waitQueueEmpty()
	before := len(ownerReports(t, w.sink.Messages()))
	if before != len(reports) {
		t.Fatalf("a report went out within report_interval 1h")
	}
	w.stop()
	w.setReportInterval(t, "1s")
	w.start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := ownerReports(t, w.sink.Messages())
		if len(rs) > before {
			last := rs[len(rs)-1]
			if last.copies != len(members) || !strings.Contains(string(last.data), "bob@member-b.example") {
				t.Errorf("the report after the restart:\n%s", last.data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the report pending at the restart never came\n%s", w.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
