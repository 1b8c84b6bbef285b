package smime

import (
	"encoding/base64"
	"io"
	"sync"
)

// Header fields of an encrypted copy's S/MIME entity (RFC 8551 §3.2,
// §3.3): the caller writes them after the copy's own header (From, To,
// Subject, ...), then a blank line, then the base64 body. name= and the
// filename are what Outlook needs to recognise the part.
const (
	EnvelopedContentType = `application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`
	EnvelopedDisposition = `attachment; filename="smime.p7m"`
	EnvelopedEncoding    = "base64"
	EnvelopedDescription = "S/MIME Encrypted Message"
)

const (
	// b64LineChars is the longest line RFC 2045 §6.8 allows.
	b64LineChars = 76
	// b64LineBytes is how many binary bytes fill one line.
	b64LineBytes = b64LineChars / 4 * 3
)

// Copies turns the shared part of an encrypted post into the base64 body
// of each member's copy without encoding the post once per member.
//
// A copy's DER is head || ri || shared, and base64 works in groups of three
// bytes, so the encoding of shared depends only on where shared starts in a
// group: (len(head)+len(ri)) mod 3. For each of the three cases the base64
// lines of the rest of shared are computed once, the first time a copy
// needs them, and handed to every copy with that alignment, read-only. Per
// member only the head, the RecipientInfo and the up to two shared bytes
// that complete their last group are encoded.
//
// Every line holds whole 4-character groups and at most 76 characters; the
// last line of the per-member part is usually shorter, so one short line
// sits inside the body. RFC 2045 allows that, and base64 decoders of mail
// clients (and openssl, gpgsm) read it as one stream.
//
// Safe for concurrent use.
type Copies struct {
	shared   []byte
	variants [3]b64Variant
}

type b64Variant struct {
	once  sync.Once
	lines []byte
}

// NewCopies prepares shared (Envelope.Shared, or the same bytes read back
// from storage). shared is kept, not copied, and must not change.
func NewCopies(shared []byte) *Copies { return &Copies{shared: shared} }

func (c *Copies) variant(k int) []byte {
	v := &c.variants[k]
	v.once.Do(func() { v.lines = base64Lines(c.shared[k:]) })
	return v.lines
}

// Pieces returns the base64 body of the copy for RecipientInfo ri, as
// slices to write in order; together they are CopyDER's bytes in base64,
// in CRLF-terminated lines. The last slice is shared between copies:
// callers must not modify it.
func (c *Copies) Pieces(ri []byte) ([][]byte, error) {
	if err := checkShared(c.shared); err != nil {
		return nil, err
	}
	head, err := contentInfoHead(ri, len(c.shared))
	if err != nil {
		return nil, err
	}
	k := (3 - (len(head)+len(ri))%3) % 3
	k = min(k, len(c.shared))
	first := make([]byte, 0, len(head)+len(ri)+k)
	first = append(first, head...)
	first = append(first, ri...)
	first = append(first, c.shared[:k]...)
	return [][]byte{base64Lines(first), c.variant(k)}, nil
}

// base64Lines encodes src as base64 in lines of at most 76 characters,
// each ending in CRLF.
func base64Lines(src []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	full := len(src) / b64LineBytes
	rest := len(src) % b64LineBytes
	n := full * (b64LineChars + 2)
	if rest > 0 {
		n += base64.StdEncoding.EncodedLen(rest) + 2
	}
	dst := make([]byte, n)
	d := 0
	for i := 0; i < full; i++ {
		base64.StdEncoding.Encode(dst[d:d+b64LineChars], src[i*b64LineBytes:(i+1)*b64LineBytes])
		dst[d+b64LineChars], dst[d+b64LineChars+1] = '\r', '\n'
		d += b64LineChars + 2
	}
	if rest > 0 {
		m := base64.StdEncoding.EncodedLen(rest)
		base64.StdEncoding.Encode(dst[d:d+m], src[full*b64LineBytes:])
		dst[d+m], dst[d+m+1] = '\r', '\n'
	}
	return dst
}

// WriteBase64 streams the concatenation of pieces to w as base64 in
// 76-character CRLF lines, without joining the pieces: the plain encoder
// for any pieces (CopyDER's, or a detached signature). It returns the
// number of bytes written.
func WriteBase64(w io.Writer, pieces [][]byte) (int64, error) {
	const batch = 64 // lines encoded per write
	var carry [b64LineBytes]byte
	nc := 0
	out := make([]byte, 0, batch*(b64LineChars+2))
	var written int64
	flush := func() error {
		m, err := w.Write(out)
		written += int64(m)
		out = out[:0]
		return err
	}
	line := func(src []byte) error {
		n := len(out)
		out = out[:n+base64.StdEncoding.EncodedLen(len(src))]
		base64.StdEncoding.Encode(out[n:], src)
		out = append(out, '\r', '\n')
		if len(out)+b64LineChars+2 > cap(out) {
			return flush()
		}
		return nil
	}
	for _, p := range pieces {
		if nc > 0 {
			k := copy(carry[nc:], p)
			nc += k
			p = p[k:]
			if nc < b64LineBytes {
				continue
			}
			if err := line(carry[:]); err != nil {
				return written, err
			}
			nc = 0
		}
		for len(p) >= b64LineBytes {
			if err := line(p[:b64LineBytes]); err != nil {
				return written, err
			}
			p = p[b64LineBytes:]
		}
		nc = copy(carry[:], p)
	}
	if nc > 0 {
		if err := line(carry[:nc]); err != nil {
			return written, err
		}
	}
	if len(out) > 0 {
		if err := flush(); err != nil {
			return written, err
		}
	}
	return written, nil
}
