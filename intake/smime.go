package intake

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/smime"
)

// S/MIME on the way in (RFC 8551): members' posts encrypted to the
// list's certificate and their signatures, checked against the author's
// registered certificate. The cryptography is package smime's; this is
// how the MIME of a post leads to it:
//
//   - an encrypted entity (application/pkcs7-mime, enveloped-data or
//     authEnveloped-data) is decrypted in memory and replaced by the
//     entity inside, which is opened in turn (Outlook signs, then
//     encrypts);
//   - a signature (multipart/signed with application/pkcs7-signature, or
//     opaque signed-data) counts for --require-signature when the
//     author's registered certificate made it; it never reaches members,
//     whatever it is: the entity it covers takes its place, and the list
//     signs its own S/MIME copies. A member's client checks a signature
//     against the From it shows, which for a list copy is the list's, and
//     against its own trust store, which rarely knows a member
//     organisation's CA: a kept signature would warn, or mislead;
//   - the X-Isaclist-SMIME field of every copy says what the list found.
//
// As for OpenPGP, nothing decrypted is quoted in a refusal, a log line or
// an error: package smime's errors name structures and certificates,
// never content.

// isSMIME reports whether p is an S/MIME entity the list opens.
func isSMIME(p *message.Part) bool {
	switch p.MediaType {
	case "multipart/signed":
		proto := strings.ToLower(p.Params["protocol"])
		return proto == "application/pkcs7-signature" || proto == "application/x-pkcs7-signature"
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return true
	}
	return false
}

// smimePart opens an S/MIME entity. What it gives in its place is the
// entity inside, with its content fields only: the author's protected
// From and Subject never reach members.
func (op *opener) smimePart(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	switch smime.KindOf(p.Bytes()) {
	case smime.KindSignedDetached:
		return op.smimeDetached(p, boundaries)
	case smime.KindSignedOpaque:
		return op.smimeOpaque(p, boundaries)
	case smime.KindEnveloped, smime.KindAuthEnveloped:
		return op.smimeDecrypt(p, boundaries)
	}
	// certs-only, or unreadable: an attachment like any other.
	return head, [][]byte{p.Body()}, false, nil
}

// smimeDetached checks a multipart/signed (RFC 8551 §3.5.3) and gives way
// to its signed part.
func (op *opener) smimeDetached(p *message.Part, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	if len(p.Children) != 2 {
		return nil, nil, false, reply.New(reply.Crypto, "the S/MIME signed message is malformed (RFC 8551 §3.5.3 wants two parts, the signed content and the signature)")
	}
	if refusal := op.check(); refusal != nil {
		return nil, nil, false, refusal
	}
	sc := sigCheck{smime: true, whole: p == op.top}
	if sig, err := p.Children[1].Decoded(); err != nil {
		sc.note = "unreadable signature part"
	} else {
		// The signed data is the first part, headers included, exactly as
		// it stands between the boundaries.
		_, err := smime.VerifyDetached(p.Children[0].Bytes(), sig, op.authorCert)
		if err == nil {
			err = op.authorCertCurrent()
		}
		sc.ok, sc.note = err == nil, op.smimeNote(err)
		if !sc.ok {
			op.learnSigner(sig, func(c *x509.Certificate) error {
				_, err := smime.VerifyDetached(p.Children[0].Bytes(), sig, c)
				return err
			})
		}
	}
	op.sigs = append(op.sigs, sc)
	if !sc.ok {
		op.o.smime.removed++
	}
	signed := p.Children[0]
	op.descend(p, signed)
	sh, sb, _, refusal := op.walk(signed, signed.Head(), boundaries)
	if refusal != nil {
		return nil, nil, false, refusal
	}
	return message.ContentHead(sh), sb, true, nil
}

// smimeOpaque checks a signed-data entity and gives way to the content it
// encapsulates. Content whose signature is not the author's still
// reaches members (unless the list requires signatures), marked as not
// verified, as a multipart/signed's would.
func (op *opener) smimeOpaque(p *message.Part, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	if refusal := op.check(); refusal != nil {
		return nil, nil, false, refusal
	}
	der, err := p.Decoded()
	if err != nil {
		return nil, nil, false, reply.New(reply.Crypto, "the S/MIME signed part's transfer encoding cannot be read")
	}
	sc := sigCheck{smime: true, whole: p == op.top}
	var content []byte
	v, err := smime.VerifyOpaque(der, op.authorCert)
	if err == nil {
		err = op.authorCertCurrent()
	}
	if err == nil {
		sc.ok, content = true, v.Content
	} else {
		sc.note = op.smimeNote(err)
		op.o.smime.removed++
		op.learnSigner(der, func(c *x509.Certificate) error {
			_, err := smime.VerifyOpaque(der, c)
			return err
		})
		if content, err = smime.OpaqueContent(der); err != nil {
			return nil, nil, false, reply.New(reply.Crypto, "the S/MIME signed message cannot be read: %s", smimeReason(err))
		}
	}
	op.sigs = append(op.sigs, sc)
	return op.smimeInner(content, p, boundaries, "the S/MIME signed content is not a valid MIME entity (RFC 8551 §3.5.2 wants a MIME entity inside)")
}

// smimeDecrypt decrypts an entity encrypted to the list's certificate
// within the post's plaintext budget.
func (op *opener) smimeDecrypt(p *message.Part, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	snap := op.snap
	if op.decryptions++; op.decryptions > maxDecryptions {
		return nil, nil, false, reply.New(reply.Crypto, "the message holds more than %d encrypted parts; send it as one S/MIME message", maxDecryptions)
	}
	id := op.r.Keys.SMIMEIdentity(snap.List, snap.Secrets)
	if id == nil {
		return nil, nil, false, reply.New(reply.NotForUs, "%s has no S/MIME certificate to decrypt with; encrypt to the list's OpenPGP key, or ask the list's secretary for its certificate", snap.List.DisplayName())
	}
	if op.budget <= 0 {
		return nil, nil, false, op.tooLarge()
	}
	der, err := p.Decoded()
	if err != nil {
		return nil, nil, false, reply.New(reply.Crypto, "the S/MIME encrypted part's transfer encoding cannot be read")
	}
	d, err := smime.Decrypt(der, id, int(op.budget))
	var notForUs *smime.ErrNotForList
	if errors.As(err, &notForUs) {
		// Encrypted to the certificate the current one replaced, by a
		// client that has not seen the new one yet.
		if prev := op.r.Keys.SMIMEPrevious(snap.List, snap.Secrets); prev != nil {
			if d2, err2 := smime.Decrypt(der, prev, int(op.budget)); !errors.As(err2, new(*smime.ErrNotForList)) {
				d, err = d2, err2
			}
		}
	}
	switch {
	case errors.As(err, &notForUs):
		return nil, nil, false, reply.New(reply.NotForUs, "the message is encrypted to %s, not to the S/MIME certificate of %s (SHA-256 %s); encrypt to the list's certificate (isaclist list cert, or the one in any signed copy from the list) so the list can read it",
			compose.Truncate(strings.Join(notForUs.Recipients, "; "), 300), snap.List.DisplayName(), smime.Info(id.Cert).Fingerprint)
	case errors.Is(err, smime.ErrTooLarge):
		return nil, nil, false, op.tooLarge()
	case err != nil:
		return nil, nil, false, reply.New(reply.Crypto, "the S/MIME message could not be decrypted: %s", smimeReason(err))
	}
	op.budget -= int64(len(d.Content))
	op.o.smime.encrypted = true
	return op.smimeInner(d.Content, p, boundaries, "the decrypted S/MIME message is not a valid MIME entity (RFC 8551 §3.3 wants a MIME entity inside the encryption)")
}

// smimeInner opens the MIME entity that was inside an S/MIME entity p
// and gives it in p's place.
func (op *opener) smimeInner(content []byte, p *message.Part, boundaries []string, malformed string) ([]byte, [][]byte, bool, *reply.Refusal) {
	inner, err := message.Parse(message.ToCRLF(content), op.r.Limits)
	if err != nil {
		// The parser's reason may quote the decrypted text: it stays here.
		return nil, nil, false, reply.New(reply.Crypto, "%s", malformed)
	}
	op.descend(p, inner.Root)
	ih, ib, _, refusal := op.walk(inner.Root, inner.Root.Head(), boundaries)
	if refusal != nil {
		return nil, nil, false, refusal
	}
	return message.ContentHead(ih), ib, true, nil
}

// descend notes that inner stands in the place of p. When p stood for the
// whole post, so does inner, and a Subject in inner's header (protected
// headers, RFC 9788, as Thunderbird sends them) is the real one: the
// outer one may be "...".
func (op *opener) descend(p, inner *message.Part) {
	if p != op.top {
		return
	}
	op.top = inner
	if subject := inner.Get("Subject"); strings.TrimSpace(subject) != "" {
		op.o.content.Subject = subject
	}
}

// authorCertCurrent refuses a signature by the author's registered
// certificate once that certificate has expired, as an OpenPGP signature
// by an expired key is: the signer chooses the signingTime attribute, and
// a key may leak after its certificate's end. The author is told when
// signatures are required (renew the certificate: `cert` command).
func (op *opener) authorCertCurrent() error {
	if c := op.authorCert; c != nil && op.snap.Now.After(c.NotAfter) {
		return fmt.Errorf("smime: the author's registered certificate expired on %s; ask the secretary to register the current one, or send it with the cert command",
			c.NotAfter.UTC().Format("2006-01-02"))
	}
	return nil
}

// learnSigner keeps the certificate a signature not by the author's
// registered certificate includes, if the signature verifies with it (its
// sender holds the key). Only the first such signature is tried: one more
// verification per post at most.
func (op *opener) learnSigner(sig []byte, verify func(*x509.Certificate) error) {
	if op.triedSigner {
		return
	}
	op.triedSigner = true
	c, err := smime.SignerCertificate(sig)
	if err != nil {
		return
	}
	if verify(c) == nil {
		op.o.smime.signerCert = c
	}
}

// smimeNote says why a signature does not count, for the copies' field
// and the refusal when signatures are required.
func (op *opener) smimeNote(err error) string {
	var notAuthor *smime.ErrNotAuthor
	switch {
	case err == nil:
		return ""
	case op.authorCert == nil:
		return "no S/MIME certificate on record for the author"
	case errors.As(err, &notAuthor):
		if len(notAuthor.Signers) == 0 {
			return "made with a certificate other than the author's registered one"
		}
		return "made with " + compose.Truncate(strings.Join(notAuthor.Signers, "; "), 200) + ", not the author's registered certificate"
	}
	return smimeReason(err)
}

// smimeReason is an smime error as a short sentence.
func smimeReason(err error) string {
	return compose.Truncate(strings.TrimPrefix(fmt.Sprint(err), "smime: "), 200)
}
