package compose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/isaclist/isaclist/store"
)

// Every copy the list sends, plain or encrypted, post or notice, is signed
// here and only here, with the list's DKIM key (RFC 6376, relaxed/relaxed,
// SHA-256).
//
// The signing is our own, not go-msgauth's Signer: that one streams the
// message through a pipe into a byte-at-a-time canonicalizer that
// allocates as much as it reads, twice, and an encrypted copy of a 1 MB
// post is 1.4 MB that each of 50 copies hashes again (issue 16: it was
// the largest cost of fan-out). Here the body is hashed from the pieces
// the copy is sent from, a line at a time where a line needs no change (a
// base64 line never does), byte by byte only where it does; the output is
// byte for byte go-msgauth's (tested against it), and go-msgauth verifies
// the signatures in the tests.

// signedFields are signed, and the ones in oversign are signed once more
// than they occur, so that a field added in transit breaks the signature
// (RFC 6376 §8.15).
var signedFields = []string{"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
	"list-id", "list-post", "list-help", "list-owner", "precedence", "autocrypt"}

var oversign = map[string]bool{"from": true, "reply-to": true, "subject": true, "date": true,
	"to": true, "cc": true, "message-id": true, "list-id": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true, "autocrypt": true}

// Signer signs copies with a list's DKIM key.
type Signer struct {
	Keys *Keyring
}

// Signature returns the list's DKIM-Signature field (with CRLF) for a
// message made of header (which we wrote), the empty line, and the body
// pieces.
func (s Signer) Signature(l *store.List, secrets *store.ListSecrets, header []byte, body [][]byte) (string, error) {
	return s.SignatureForHash(l, secrets, header, BodyHash(body))
}

// SignatureForHash is Signature for a body whose hash (BodyHash, or a
// BodyHasher's Sum) is bh.
func (s Signer) SignatureForHash(l *store.List, secrets *store.ListSecrets, header, bh []byte) (string, error) {
	key, err := s.Keys.DKIMSigner(l, secrets)
	if err != nil {
		return "", err
	}
	present := fieldCounts(header)
	var keys []string
	for _, k := range signedFields {
		n := present[k]
		if oversign[k] {
			n++
		}
		for range n {
			keys = append(keys, k)
		}
	}
	_, domain, _ := strings.Cut(l.Address, "@")
	return dkimSign(key, domain, l.DKIMSelector, keys, header, bh, time.Now())
}

// Sign returns the message signed: the signature, header, empty line and
// body in one slice.
func (s Signer) Sign(l *store.List, secrets *store.ListSecrets, header, body []byte) ([]byte, error) {
	sig, err := s.Signature(l, secrets, header, [][]byte{body})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sig)+len(header)+2+len(body))
	out = append(out, sig...)
	out = append(out, header...)
	out = append(out, "\r\n"...)
	return append(out, body...), nil
}

// fieldCounts counts the fields of a header we wrote, by lower-case name:
// a line that does not begin with white space begins a field.
func fieldCounts(header []byte) map[string]int {
	counts := map[string]int{}
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			counts[strings.ToLower(strings.TrimSpace(string(line[:i])))]++
		}
	}
	return counts
}

// dkimSign makes the DKIM-Signature field (with CRLF) over header, of
// which the fields named in keys are signed, bottom-most instance first
// (RFC 6376 §5.4.2; a name listed more often than it occurs signs its
// absence), and the body hash bh.
func dkimSign(key crypto.Signer, domain, selector string, keys []string, header, bh []byte, now time.Time) (string, error) {
	algo, hashFor := "rsa-sha256", crypto.SHA256
	switch key.Public().(type) {
	case *rsa.PublicKey:
	case ed25519.PublicKey:
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash, as a message.
		algo, hashFor = "ed25519-sha256", crypto.Hash(0)
	default:
		return "", fmt.Errorf("dkim: unsupported key type %T", key.Public())
	}
	if !slices.Contains(keys, "from") {
		return "", fmt.Errorf("dkim: the From field must be signed")
	}
	tags := []dkimTag{
		{"a", algo},
		{"bh", base64.StdEncoding.EncodeToString(bh)},
		{"c", "relaxed/relaxed"},
		{"d", domain},
		{"h", strings.Join(keys, ":")},
		{"s", selector},
		{"t", strconv.FormatInt(now.Unix(), 10)},
		{"v", "1"},
	}
	h := sha256.New()
	fields := headerFields(header)
	picked := map[string]int{}
	for _, k := range keys {
		if kv := pickField(fields, k, picked); kv != "" {
			h.Write([]byte(relaxedHeader(kv)))
		}
	}
	// The signature field itself, with an empty b=, and without its CRLF
	// (RFC 6376 §3.7).
	h.Write([]byte(strings.TrimRight(relaxedHeader(formatSignature(tags, "")), "\r\n")))
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hashFor)
	if err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	return formatSignature(tags, base64.StdEncoding.EncodeToString(sig)), nil
}

type dkimTag struct{ name, value string }

// formatSignature lays the tags out in lines of at most about 78
// characters, the b= value folded on lines of its own, as go-msgauth does.
func formatSignature(tags []dkimTag, b string) string {
	var s strings.Builder
	s.WriteString("DKIM-Signature:")
	line := ""
	for _, t := range tags {
		if 3+len(line)+len(t.value)+len(t.name) > 75 {
			s.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + t.name + "=" + t.value + ";"
	}
	s.WriteString(line)
	s.WriteString("\r\n")
	b = " b=" + b
	for i := 0; i < len(b); i += 75 {
		if i > 0 {
			s.WriteString("\r\n ")
		}
		s.WriteString(b[i:min(i+75, len(b))])
	}
	s.WriteString("\r\n")
	return s.String()
}

// headerFields splits a header into its fields, each with its
// continuation lines and every line ending in CRLF.
func headerFields(header []byte) []string {
	var fields []string
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if len(fields) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1] += string(line) + "\r\n"
		} else {
			fields = append(fields, string(line)+"\r\n")
		}
	}
	return fields
}

// pickField returns the bottom-most instance of the field named key not
// yet picked, or "".
func pickField(fields []string, key string, picked map[string]int) string {
	skip := picked[key]
	for i := len(fields) - 1; i >= 0; i-- {
		name, _, _ := strings.Cut(fields[i], ":")
		if !strings.EqualFold(strings.TrimSpace(name), key) {
			continue
		}
		if skip == 0 {
			picked[key]++
			return fields[i]
		}
		skip--
	}
	return ""
}

// relaxedHeader is a field in the relaxed canonical form (RFC 6376
// §3.4.2): the name in lower case, the value unfolded, runs of white space
// made one space, none around the colon or at the end.
func relaxedHeader(kv string) string {
	k, v, ok := strings.Cut(kv, ":")
	if !ok {
		return strings.TrimSpace(strings.ToLower(kv)) + ":\r\n"
	}
	v = strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}), " ")
	return strings.TrimSpace(strings.ToLower(k)) + ":" + v + "\r\n"
}

// BodyHash is the SHA-256 of the body made of pieces, in the relaxed
// canonical form (RFC 6376 §3.4.4): white space at the ends of lines
// removed, runs of it made one space, empty lines at the end removed, a
// bare LF read as CRLF.
func BodyHash(pieces [][]byte) []byte {
	var h BodyHasher
	for _, p := range pieces {
		h.Write(p) //nolint:errcheck // never fails
	}
	return h.Sum()
}

// BodyHasher is BodyHash for a body that is written to it (a body file
// streamed through it).
type BodyHasher struct{ r relaxedBody }

// Write implements io.Writer; it never fails.
func (h *BodyHasher) Write(p []byte) (int, error) {
	if h.r.h == nil {
		h.r.h = sha256.New()
	}
	h.r.write(p)
	return len(p), nil
}

// Sum returns the body hash of what was written.
func (h *BodyHasher) Sum() []byte {
	if h.r.h == nil {
		h.r.h = sha256.New()
	}
	return h.r.sum()
}

// relaxedBody canonicalizes and hashes a body written in pieces that may
// split lines anywhere. A line that needs no change (no white space, no
// CR but the one before its LF) is hashed as it is, together with the
// lines around it that need none either; any other byte goes through the
// byte-wise state machine, which is go-msgauth's.
type relaxedBody struct {
	h hash.Hash
	// cr: the last byte read was a CR (an LF after it is no bare LF).
	cr bool
	// wsp: white space was read since the last other byte; it becomes one
	// space if more than white space follows on its line.
	wsp bool
	// crlf are the line ends read since the last other byte: they are
	// written only if more than line ends follows.
	crlf []byte
	// written: something other than line ends was hashed, so the body
	// ends with one CRLF.
	written bool
	out     []byte // canonical bytes not yet hashed
}

func (r *relaxedBody) flush() {
	if len(r.out) > 0 {
		r.h.Write(r.out)
		r.out = r.out[:0]
	}
}

// emit takes one byte after bare-LF repair.
func (r *relaxedBody) emit(c byte) {
	switch c {
	case ' ', '\t':
		r.wsp = true
	case '\r', '\n':
		r.wsp = false
		r.crlf = append(r.crlf, c)
	default:
		r.out = append(r.out, r.crlf...)
		r.crlf = r.crlf[:0]
		if r.wsp {
			r.out = append(r.out, ' ')
			r.wsp = false
		}
		r.out = append(r.out, c)
		r.written = true
		if len(r.out) >= 4096 {
			r.flush()
		}
	}
}

// slow takes one byte of input.
func (r *relaxedBody) slow(c byte) {
	prevCR := r.cr
	r.cr = c == '\r'
	if c == '\n' && !prevCR {
		r.emit('\r')
	}
	r.emit(c)
}

// cleanLine reports whether line (ending in LF) is a line the relaxed
// form leaves as it is: its only CR the one before the LF, no white space.
func cleanLine(line []byte) bool {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return false
	}
	content := line[:n-2]
	return bytes.IndexByte(content, '\r') < 0 && bytes.IndexByte(content, ' ') < 0 && bytes.IndexByte(content, '\t') < 0
}

func (r *relaxedBody) write(p []byte) {
	// run is p[runStart:runEnd], canonical as it stands and not yet
	// hashed; the input after runEnd up to i is line ends only.
	runStart, runEnd := -1, -1
	endRun := func(i int) {
		if runStart >= 0 {
			r.h.Write(p[runStart:runEnd])
			r.crlf = append(r.crlf[:0], p[runEnd:i]...)
			runStart = -1
		}
	}
	i := 0
	for i < len(p) {
		if !r.cr && !r.wsp {
			nl := bytes.IndexByte(p[i:], '\n')
			if nl >= 0 && cleanLine(p[i:i+nl+1]) {
				if nl > 1 { // a line with content
					if runStart < 0 {
						r.out = append(r.out, r.crlf...)
						r.crlf = r.crlf[:0]
						r.flush()
						runStart = i
					}
					runEnd = i + nl - 1
					r.written = true
				} else if runStart < 0 {
					r.crlf = append(r.crlf, '\r', '\n')
				}
				i += nl + 1
				continue
			}
		}
		endRun(i)
		// Byte by byte to the end of this line (or of p).
		for i < len(p) {
			c := p[i]
			r.slow(c)
			i++
			if c == '\n' {
				break
			}
		}
	}
	endRun(i)
	r.flush()
}

func (r *relaxedBody) sum() []byte {
	r.flush()
	if r.written {
		r.h.Write([]byte("\r\n"))
	}
	return r.h.Sum(nil)
}
