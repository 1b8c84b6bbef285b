package tlp

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// The corpus under testdata/fuzz holds the table's subjects as seeds, and
// whatever the fuzzers found. Rewrite the seeds after changing the table
// with: go test ./tlp -run TestSeedCorpus -update-corpus
var updateCorpus = flag.Bool("update-corpus", false, "write the table's subjects to testdata/fuzz")

func TestSeedCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite the seeds")
	}
	var seeds []string
	for _, c := range readCases {
		seeds = append(seeds, c.subject)
	}
	seeds = append(seeds,
		"Re: [Energy ISAC] [TLP:AMBER] Outage", "TLP [TLP:RED] RED",
		"[TLP [TLP:RED] ORANGE]", "TLP:AMBER [TLP:RED] +STRICT")
	for _, target := range []string{"FuzzRead", "FuzzStrip"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			name := fmt.Sprintf("seed-%x", sha256.Sum256([]byte(s)))[:21]
			data := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Read(s)
		var u *UnknownLabelError
		switch {
		case err == nil:
			if !l.Valid() {
				t.Fatalf("Read(%q) = invalid label %d", s, int(l))
			}
		case errors.Is(err, ErrNoLabel):
		case errors.As(err, &u):
			if utf8.RuneCountInString(u.Word) > maxWord+3 || !utf8.ValidString(u.Word) {
				t.Fatalf("Read(%q): Word %q is too long or not UTF-8", s, u.Word)
			}
			if strings.ContainsAny(err.Error(), "\r\n\x00") {
				t.Fatalf("Read(%q): error text %q holds control characters", s, err)
			}
		default:
			t.Fatalf("Read(%q): unexpected error %v", s, err)
		}
		if err == nil || errors.Is(err, ErrNoLabel) {
			// Adding a label can only raise what is read, never lower it
			// or make the subject unreadable.
			for _, add := range []Label{Clear, Red} {
				want := max(add, max(l, 0))
				if got, err := Read(s + " [" + add.String() + "]"); got != want || err != nil {
					t.Fatalf("Read(%q + %v) = %v, %v; want %v", s, add, got, err, want)
				}
				if got, err := Read("[" + add.String() + "] " + s); got != want || err != nil {
					t.Fatalf("Read(%v + %q) = %v, %v; want %v", add, s, got, err, want)
				}
			}
		}
		checkStrip(t, s, l, err)
	})
}

func FuzzStrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Read(s)
		checkStrip(t, s, l, err)
	})
}

// checkStrip checks Strip's promises on s, which Read read as l, err.
func checkStrip(t *testing.T, s string, l Label, err error) {
	t.Helper()
	out := Strip(s)
	if _, err := Read(out); !errors.Is(err, ErrNoLabel) {
		t.Fatalf("Read(Strip(%q)) = %v: Strip(...) = %q", s, err, out)
	}
	if again := Strip(out); again != out {
		t.Fatalf("Strip not idempotent on %q: %q then %q", s, out, again)
	}
	if d := Decode(out); d != out {
		t.Fatalf("Strip(%q) = %q decodes again to %q", s, out, d)
	}
	if !utf8.ValidString(out) || strings.TrimSpace(out) != out || strings.Contains(out, "  ") ||
		strings.ContainsFunc(out, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		t.Fatalf("Strip(%q) = %q: not tidy", s, out)
	}
	// The list rebuilds outgoing subjects as prefix, label, stripped
	// subject; it must read back exactly that label, and strip back to the
	// same subject.
	for _, want := range []Label{Clear, AmberStrict, max(l, Green)} {
		subject := "[Energy ISAC] [" + want.String() + "] " + out
		if got, err := Read(subject); got != want || err != nil {
			t.Fatalf("Read(%q) = %v, %v; want %v (from %q)", subject, got, err, want, s)
		}
		if got := Strip(subject); got != strings.TrimSpace("[Energy ISAC] "+out) {
			t.Fatalf("Strip(%q) = %q (from %q)", subject, got, s)
		}
	}
	if err == nil && l != 0 && out == Decode(s) {
		t.Fatalf("Strip(%q) removed nothing though Read found %v", s, l)
	}
}
