package outbound

import (
	"bufio"
	"bytes"
	"errors"
)

// errBareLineEnding: a copy holds a CR or LF that is not part of a CRLF.
// Receivers disagree on what such a byte means, which is how SMTP
// smuggling slips a second message into the first; a copy like that is
// never sent, whatever made it.
var errBareLineEnding = errors.New("the copy holds a bare CR or LF; not sent")

// dotWriter writes a message as DATA carries it (RFC 5321 §4.5.2): a
// line that begins with a dot gets one more. It refuses a CR or LF that is
// not part of a CRLF (errBareLineEnding). Nothing reaches w before it has
// been checked; lines are found and checked with bytes.IndexByte, and a
// run of good lines is handed on whole (a write larger than w's buffer
// goes to the connection without a copy).
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // the last byte was a CR
}

func (d *dotWriter) Write(p []byte) (int, error) {
	start := 0 // p[start:i] is checked and not yet written
	i := 0
	for i < len(p) {
		if d.cr {
			// The CR held back at the end of the last write (i is 0).
			if p[i] != '\n' {
				return 0, errBareLineEnding
			}
			d.w.WriteString("\r\n") //nolint:errcheck // the next write reports it
			d.cr, d.bol = false, true
			i++
			start = i
			continue
		}
		if d.bol {
			d.bol = false
			if p[i] == '.' {
				if _, err := d.w.Write(p[start:i]); err != nil {
					return 0, err
				}
				d.w.WriteByte('.') //nolint:errcheck // the next write reports it
				start = i
			}
		}
		nl := bytes.IndexByte(p[i:], '\n')
		if nl < 0 {
			// The line goes on in the next write; a CR may only be its
			// last byte so far, and is held back until an LF follows.
			end := len(p)
			if cr := bytes.IndexByte(p[i:], '\r'); cr >= 0 && i+cr != len(p)-1 {
				return 0, errBareLineEnding
			} else if cr >= 0 {
				d.cr = true
				end--
			}
			if _, err := d.w.Write(p[start:end]); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		// A line ends here: its only CR is the one before the LF.
		if nl == 0 || p[i+nl-1] != '\r' || bytes.IndexByte(p[i:i+nl-1], '\r') >= 0 {
			return 0, errBareLineEnding
		}
		i += nl + 1
		d.bol = true
	}
	if _, err := d.w.Write(p[start:i]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// end finishes the message with the final dot, after a CRLF if the last
// line lacks one.
func (d *dotWriter) end() error {
	if d.cr {
		return errBareLineEnding
	}
	if !d.bol {
		d.w.WriteString("\r\n") //nolint:errcheck // the flush reports it
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}
