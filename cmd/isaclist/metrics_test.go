package main

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsAndHealth(t *testing.T) {
	addr := freePort(t)
	w := newWorld(t, worldOpts{metrics: addr})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:AMBER] counted", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	w.post("alice@member-a.example", sandbox.Message{Subject: "no label", Body: "x\n"}) //nolint:errcheck
	w.copies(0, 3)
	w.waitQueueEmpty()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`isaclist_posts_accepted_total{label="TLP:AMBER"} 1`,
		`isaclist_posts_refused_total{reason="no-label"} 1`,
		`isaclist_authentication_total{method="dkim",result="pass"} 2`,
		`isaclist_deliveries_total{outcome="sent",tls="no"} 3`,
		`isaclist_smtp_sessions_total{tls="no"} 2`,
		"isaclist_delivery_latency_seconds_bucket",
		"isaclist_queue_copies 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "counted") {
		t.Error("/metrics shows a subject")
	}
	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// A copy waiting for more than a day makes the health check fail.
	w.sink.SetReject(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "down"}
	})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] stuck", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().Add(25 * time.Hour).UnixNano())
	w.d.Clock.Set(func() time.Time { return time.Unix(0, clock.Load()) })
	defer w.d.Clock.Set(nil)
	code, body = get(t, "http://"+addr+"/healthz")
	if code != 503 || !strings.Contains(body, "queue") {
		t.Errorf("/healthz with a copy waiting 25 hours: %d %q", code, body)
	}
}
