package message

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
)

// CheckFraming refuses bare CR and bare LF anywhere in a message: they are
// how SMTP smuggling hides a second message in the first (a "\n.\n" that
// one server reads as the end of data and another does not), and nothing
// we pass on may carry them. NUL is refused too (RFC 5322 §2.3).
func CheckFraming(msg []byte) error {
	for i, b := range msg {
		switch b {
		case '\r':
			if i+1 >= len(msg) || msg[i+1] != '\n' {
				return errorf("the message contains a bare CR (a CR not followed by LF), which RFC 5322 §2.3 does not allow; lines must end in CRLF")
			}
		case '\n':
			if i == 0 || msg[i-1] != '\r' {
				return errorf("the message contains a bare LF (a line ending without CR), which RFC 5322 §2.3 does not allow; lines must end in CRLF")
			}
		case 0:
			return errorf("the message contains a NUL byte, which RFC 5322 §2.3 does not allow")
		}
	}
	return nil
}

// CheckFramingPieces is CheckFraming over a message made of pieces, whose
// line endings may span two pieces: the last check on every copy we make.
func CheckFramingPieces(pieces [][]byte) error {
	cr := false
	for _, p := range pieces {
		for _, b := range p {
			if cr {
				cr = false
				if b == '\n' {
					continue
				}
				return errorf("bare CR in the copy")
			}
			switch b {
			case '\r':
				cr = true
			case '\n':
				return errorf("bare LF in the copy")
			case 0:
				return errorf("NUL in the copy")
			}
		}
	}
	if cr {
		return errorf("bare CR at the end of the copy")
	}
	return nil
}

// ToCRLF makes every line ending CRLF and drops NUL: decrypted text from
// some clients uses LF, and nothing we pass on may hold a bare CR or LF.
func ToCRLF(b []byte) []byte {
	if CheckFraming(b) == nil {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/50)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out.WriteString("\r\n")
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out.WriteString("\r\n")
		case 0:
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// IdentityEncoding reports whether a transfer encoding leaves the body as
// the text itself.
func IdentityEncoding(cte string) bool {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// ErrUnknownEncoding is a Content-Transfer-Encoding we cannot read.
var ErrUnknownEncoding = errors.New("unknown transfer encoding")

// Decode undoes a transfer encoding.
func Decode(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, newlineStripper{bytes.NewReader(body)}))
	}
	return nil, ErrUnknownEncoding
}

// Encode applies a transfer encoding, with CRLF line breaks.
func Encode(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		// The writer emits CRLF line breaks (RFC 2045 §6.7). It is given
		// CRLF only: it loses the LF of a CR, an encoded byte, LF.
		w.Write(crlfLineBreaks(body)) //nolint:errcheck // bytes.Buffer
		if err := w.Close(); err != nil {
			return nil, err
		}
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
			// Text that does not end in a line break ends in a soft one
			// (RFC 2045 §6.7 (5)): the line end that mail adds after the
			// last line must not become part of the text.
			b.WriteString("=\r\n")
		}
		return b.Bytes(), nil
	case "base64":
		return Base64Lines(body), nil
	}
	return nil, ErrUnknownEncoding
}

// Base64Lines is b in base64, 76 characters a line, each line ending in
// CRLF (RFC 2045 §6.8).
func Base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	out.Grow(len(enc) + len(enc)/38 + 2)
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc + "\r\n")
	return out.Bytes()
}

// crlfLineBreaks returns b with every bare CR and bare LF made a CRLF.
func crlfLineBreaks(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out.WriteString("\r\n")
			i++
		case c == '\r' || c == '\n':
			out.WriteString("\r\n")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	j := 0
	for _, c := range p[:k] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}
