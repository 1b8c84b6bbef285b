package mailhdr

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<Target>/ (Go's "go test fuzz v1"
// format), written from the table tests by
//
//	MAILHDR_WRITE_CORPUS=1 go test -run TestSeedCorpus ./mailhdr
//
// Files whose name starts with "seed-" are generated; others are inputs the
// fuzzer found and are kept as regression tests.

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, lim := range []Limits{DefaultLimits(), {MaxFields: 5, MaxLineBytes: 40, MaxHeaderBytes: 200}} {
			h, body, err := Parse(msg, lim)
			if err != nil {
				checkError(t, err)
				continue
			}
			checkParsed(t, msg, h, body)
			if len(h.Fields) > lim.MaxFields || body > lim.MaxHeaderBytes {
				t.Fatalf("limits %+v exceeded: %d fields, %d bytes", lim, len(h.Fields), body)
			}
			for _, line := range bytes.Split(msg[:body], []byte("\r\n")) {
				if len(line) > lim.MaxLineBytes {
					t.Fatalf("line of %d bytes accepted under %+v", len(line), lim)
				}
			}
			if m, err := CheckFrom(h); err != nil {
				checkError(t, err)
			} else {
				checkMailbox(t, h.Values("From")[0], m)
			}
		}
	})
}

func FuzzParseFrom(f *testing.F) {
	f.Fuzz(func(t *testing.T, value string) {
		m, err := ParseFrom(value)
		if err != nil {
			checkError(t, err)
			return
		}
		checkMailbox(t, value, m)
	})
}

func corpusFile(kind, value string) []byte {
	return []byte("go test fuzz v1\n" + kind + "(" + fmt.Sprintf("%q", value) + ")\n")
}

func seedName(name string) string {
	return "seed-" + strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '-'
	}, name)
}

// TestSeedCorpus checks that every table case is in the committed seed
// corpus (or, with MAILHDR_WRITE_CORPUS=1, writes it).
func TestSeedCorpus(t *testing.T) {
	want := map[string][]byte{}
	for _, tc := range parseCases() {
		want[filepath.Join("FuzzParse", seedName(tc.name))] = corpusFile("[]byte", tc.msg)
	}
	for _, tc := range fromCases() {
		want[filepath.Join("FuzzParseFrom", seedName(tc.name))] = corpusFile("string", tc.value)
		// The same value as a whole message, so FuzzParse also reaches
		// CheckFrom with it.
		want[filepath.Join("FuzzParse", seedName("from-"+tc.name))] = corpusFile("[]byte", "From: "+tc.value+"\r\nSubject: x\r\n\r\n")
	}
	write := os.Getenv("MAILHDR_WRITE_CORPUS") == "1"
	for rel, data := range want {
		path := filepath.Join("testdata", "fuzz", rel)
		if write {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("seed corpus file %s is missing or stale; run MAILHDR_WRITE_CORPUS=1 go test -run TestSeedCorpus", path)
		}
	}
}
