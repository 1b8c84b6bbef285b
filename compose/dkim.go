package compose

import (
	"bytes"
	"crypto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/store"
)

// Every copy the list sends, plain or encrypted, post or notice, is signed
// here and only here, with the list's DKIM key.

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
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               l.DKIMSelector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", err
	}
	write := func(b []byte) error {
		_, err := signer.Write(b)
		return err
	}
	err = write(header)
	if err == nil {
		err = write([]byte("\r\n"))
	}
	for _, piece := range body {
		if err != nil {
			break
		}
		err = write(piece)
	}
	if err != nil {
		signer.Close()
		return "", err
	}
	if err := signer.Close(); err != nil {
		return "", err
	}
	return signer.Signature(), nil
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
