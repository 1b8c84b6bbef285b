package outbound

import (
	"bufio"
	"bytes"
	"testing"
)

// Maildir files use LF; a CRLF split between two writes is still one LF,
// and a bare CR stays.
func TestLFWriter(t *testing.T) {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	l := &lfWriter{w: bw}
	for _, p := range []string{"a\r\nb\r", "\nc\rd\r", "", "\r\n", "e\r"} {
		l.Write([]byte(p)) //nolint:errcheck
	}
	l.Close()  //nolint:errcheck
	bw.Flush() //nolint:errcheck
	if got, want := b.String(), "a\nb\nc\rd\r\ne\r"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
