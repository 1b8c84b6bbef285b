package compose

import (
	"bytes"

	"github.com/isaclist/isaclist/store"
)

// SMIMEFrame returns the unencrypted envelope of the S/MIME copies (RFC
// 8551 §3.3): the outer header with the placeholder subject, as for the
// OpenPGP copies (nothing of the content outside), and a body that is,
// per copy, the base64 of the member's CMS EnvelopedData. Inside it, the
// list signs the entity (its certificate travels in the signature, so
// clients learn it).
func (p *Post) SMIMEFrame() *store.Frame {
	var h bytes.Buffer
	p.writeOuter(&h, OutgoingSubject(p.List.Prefix, p.Label, placeholderSubject), true)
	h.WriteString("MIME-Version: 1.0\r\n")
	h.WriteString("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n")
	h.WriteString("Content-Transfer-Encoding: base64\r\n")
	h.WriteString("Content-Disposition: attachment; filename=\"smime.p7m\"\r\n")
	h.WriteString("Content-Description: S/MIME Encrypted Message\r\n")
	p.writeListHeaders(&h)
	return &store.Frame{Header: h.Bytes()}
}
