package outbound

import (
	"errors"
	"io"
)

// errBareLineEnding: a copy holds a CR or LF that is not part of a CRLF.
// Receivers disagree on what such a byte means, which is how SMTP
// smuggling slips a second message into the first; a copy like that is
// never sent, whatever made it.
var errBareLineEnding = errors.New("the copy holds a bare CR or LF; not sent")

// strictLines passes bytes on while every line ends in CRLF. go-smtp's
// DATA writer would turn a bare LF into CRLF but pass a bare CR as it is.
type strictLines struct {
	w  io.Writer
	cr bool // the last byte written was a CR
}

func (s *strictLines) Write(p []byte) (int, error) {
	for _, b := range p {
		// A CR must be followed by LF, and an LF preceded by CR.
		if s.cr != (b == '\n') {
			return 0, errBareLineEnding
		}
		s.cr = b == '\r'
	}
	return s.w.Write(p)
}

// finish reports a CR at the very end.
func (s *strictLines) finish() error {
	if s.cr {
		return errBareLineEnding
	}
	return nil
}

// writeStrict writes msg to w through strictLines.
func writeStrict(w io.Writer, msg io.WriterTo) error {
	s := &strictLines{w: w}
	if _, err := msg.WriteTo(s); err != nil {
		return err
	}
	return s.finish()
}
