package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzAdminRequest sends its input as the bytes of one connection to a real
// admin socket (in a temporary folder, served by Server with a Handler that
// echoes the request) and checks what comes back:
//
//   - exactly one line of JSON, a Response, then the end of the connection;
//   - a request line larger than MaxRequestBytes is refused (ok=false);
//   - a malformed request (not one JSON object with a non-empty "op") gets
//     ok=false with an error; a well-formed one reaches the Handler, whose
//     result comes back intact (ok=true, or the Handler's error, or the
//     recovered panic's generic error);
//   - no goroutine serving the connection is left behind, and the next
//     connection is served.
//
// pad 0xf1, 0xf2 or 0xf3 pads the request line with spaces (JSON
// whitespace) to MaxRequestBytes, one byte more, and twice that: the size
// limit's boundary, reached from any input. Such inputs take tens of
// milliseconds, so only these three values pad.
//
//	go test ./admin -run '^$' -fuzz '^FuzzAdminRequest$' -fuzztime 10m
func FuzzAdminRequest(f *testing.F) {
	s := &Server{
		Path:    filepath.Join(f.TempDir(), "admin.sock"),
		Handler: echoHandler,
		Log:     slog.New(slog.DiscardHandler),
	}
	if err := s.Listen(); err != nil {
		f.Fatal(err)
	}
	go s.Serve() //nolint:errcheck // ends on Close
	f.Cleanup(s.Close)

	f.Fuzz(func(t *testing.T, in []byte, pad uint8) {
		in = padRequest(in, pad)
		line := in
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line = in[:i+1]
		}
		resp := fuzzRoundTrip(t, s.Path, in)
		want, malformed := expectResponse(line)
		switch {
		case len(line) > MaxRequestBytes:
			if resp.OK || !strings.Contains(resp.Error, "larger than") {
				t.Fatalf("a %d-byte request was not refused as too large: %+v", len(line), resp)
			}
		case malformed != "":
			if resp.OK || resp.Error == "" {
				t.Fatalf("malformed request (%s) %q answered %+v", malformed, trunc(line), resp)
			}
		default:
			checkEcho(t, want, resp)
		}
		waitNoHandler(t)
		// The server still answers the next connection.
		if r := fuzzRoundTrip(t, s.Path, []byte(`{"op":"ping"}`+"\n")); !r.OK {
			t.Fatalf("after %q, a ping got %+v", trunc(line), r)
		}
		waitNoHandler(t)
	})
}

// echoHandler returns the request as its result; op "fail" returns an error
// with warnings, op "panic" panics.
func echoHandler(_ context.Context, _ Caller, req Request) (any, []string, error) {
	switch req.Op {
	case "fail":
		return nil, []string{"w:" + req.List}, errors.New("failed: " + req.List)
	case "panic":
		panic("asked to: " + req.List)
	}
	return req, []string{"echo"}, nil
}

func padRequest(in []byte, pad uint8) []byte {
	var size int
	switch pad {
	case 0xf1:
		size = MaxRequestBytes
	case 0xf2:
		size = MaxRequestBytes + 1
	case 0xf3:
		size = 2 * MaxRequestBytes
	default:
		return in
	}
	end := len(in)
	if i := bytes.IndexByte(in, '\n'); i >= 0 {
		end = i
	}
	rest := in[end:]
	lineLen := end + min(len(rest), 1) // the newline, if any, counts
	if lineLen >= size {
		return in
	}
	out := make([]byte, 0, len(in)+size-lineLen)
	out = append(out, in[:end]...)
	out = append(out, bytes.Repeat([]byte{' '}, size-lineLen)...)
	return append(out, rest...)
}

// fuzzRoundTrip writes in (then shuts down its side) and reads the whole
// answer, which must be exactly one line holding one JSON Response.
func fuzzRoundTrip(t *testing.T, path string, in []byte) Response {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	uc := c.(*net.UnixConn)
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(20 * time.Second)) //nolint:errcheck
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// The server may stop reading (a refused oversized request):
		// the write then fails, which is fine.
		uc.Write(in) //nolint:errcheck
		uc.CloseWrite()
	}()
	var out bytes.Buffer
	_, err = io.Copy(&out, uc)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the answer: %v (after %q)", err, out.Bytes())
	}
	uc.Close()
	<-wrote
	b := out.Bytes()
	if len(b) == 0 || b[len(b)-1] != '\n' || bytes.IndexByte(b, '\n') != len(b)-1 {
		t.Fatalf("answer is not exactly one line: %q", trunc(b))
	}
	var r Response
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("answer %q is not a Response: %v", trunc(b), err)
	}
	if dec.More() {
		t.Fatalf("answer %q holds more than one JSON value", trunc(b))
	}
	if r.OK == (r.Error != "") {
		t.Fatalf("answer %q: ok=%v with error %q", trunc(b), r.OK, r.Error)
	}
	return r
}

// expectResponse decodes a request line independently of the server: it is
// malformed unless it is one JSON object with a non-empty string "op" that
// decodes into a Request.
func expectResponse(line []byte) (req Request, malformed string) {
	trimmed := bytes.TrimSpace(line)
	if !json.Valid(trimmed) {
		return req, "not JSON"
	}
	if trimmed[0] != '{' {
		return req, "not an object"
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return req, "does not decode: " + err.Error()
	}
	if req.Op == "" {
		return req, "no op"
	}
	return req, ""
}

func checkEcho(t *testing.T, want Request, r Response) {
	t.Helper()
	switch want.Op {
	case "fail":
		if r.OK || r.Error != "failed: "+want.List || len(r.Warnings) != 1 {
			t.Fatalf("handler error for %+v came back as %+v", want, r)
		}
		return
	case "panic":
		if r.OK || !strings.Contains(r.Error, "internal error") || strings.Contains(r.Error, "asked to") {
			t.Fatalf("handler panic for %+v came back as %+v", want, r)
		}
		return
	}
	if !r.OK || len(r.Warnings) != 1 || r.Warnings[0] != "echo" {
		t.Fatalf("well-formed request %+v answered %+v", want, r)
	}
	var got Request
	if err := json.Unmarshal(r.Result, &got); err != nil {
		t.Fatalf("echoed result %q: %v", r.Result, err)
	}
	if !reflect.DeepEqual(compactArgs(got), compactArgs(want)) {
		t.Fatalf("handler saw %+v, sent %+v", got, want)
	}
}

// compactArgs puts Args in the form json.Marshal gives a RawMessage
// (compact, with <, > and & escaped), which is how the echo sends it back.
func compactArgs(r Request) Request {
	if len(r.Args) > 0 {
		if b, err := json.Marshal(r.Args); err == nil {
			r.Args = b
		}
	}
	return r
}

// waitNoHandler waits until no goroutine is in Server.handle: every
// connection's goroutine ends once its answer is sent.
func waitNoHandler(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("admin.(*Server).handle(")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection's goroutine did not end:\n%s", buf[:n])
		}
		time.Sleep(time.Millisecond)
	}
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
