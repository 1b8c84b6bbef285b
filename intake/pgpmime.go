package intake

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
)

// OpenPGP on the way in: members' posts encrypted to the list (PGP/MIME,
// RFC 3156, or inline) and their signatures, checked against the author's
// registered key. The cryptography is package pgp's; this is how the MIME
// of a post leads to it, and what members receive of it:
//
//   - inline PGP is handled as the member's mail client means it: every
//     armored block in every text part (any transfer encoding, both
//     alternatives of a multipart/alternative, HTML too) is decrypted in
//     place, the text around it kept, in the part's own charset;
//   - signatures count wherever they are (PGP/MIME, nested
//     multipart/signed, cleartext-signed blocks, inside the encryption);
//   - a signature goes out verifiable only if it is the author's and
//     covers what members read; any other (another member's key, an
//     unknown key, a bad one) is removed, with a note in the text where
//     it stood, so that no reader takes it for the author's;
//   - the author's protected headers (From, Subject inside the signed or
//     encrypted entity) never reach members: the list's own header fields
//     stand in their place.
//
// Nothing decrypted is quoted in a refusal, a log line, an error or a
// notice: every reason given here is a fixed sentence, a number or a key
// ID (pgp's errors are built the same way).

// pgpMIMESigned is the author's signature over a PGP/MIME post's
// decrypted entity, and whether the copies can carry it.
type pgpMIMESigned struct {
	entity, signature []byte
	keep              bool
}

// pgpMIMEData finds the encrypted data of a PGP/MIME post (RFC 3156 §4),
// or of one that Microsoft Exchange rewrote on the way: the parts of the
// multipart/encrypted turned into attachments of a multipart/mixed, the
// encrypted one named encrypted.asc.
func pgpMIMEData(root *message.Part) ([]byte, bool, *reply.Refusal) {
	switch root.MediaType {
	case "multipart/encrypted":
		if !strings.EqualFold(root.Params["protocol"], "application/pgp-encrypted") {
			return nil, false, nil
		}
		if len(root.Children) != 2 {
			return nil, false, reply.New(reply.Crypto, "the PGP/MIME message is malformed (RFC 3156 §4 wants two parts, the second holding the encrypted data)")
		}
		data, err := root.Children[1].Decoded()
		if err != nil {
			return nil, false, reply.New(reply.Crypto, "the encrypted part's transfer encoding cannot be read")
		}
		return data, true, nil
	case "multipart/mixed":
		var enc *message.Part
		version := false
		for _, c := range root.Children {
			body, err := c.Decoded()
			switch {
			case err != nil:
				return nil, false, nil
			case c.MediaType == "application/pgp-encrypted" && bytes.Contains(body, []byte("Version: 1")):
				version = true
			case c.MediaType == "application/octet-stream" && strings.EqualFold(c.Filename(), "encrypted.asc") && pgp.HasArmor(body) && enc == nil:
				enc = c
			case c.MediaType == "text/plain" && len(bytes.TrimSpace(body)) == 0:
			default:
				return nil, false, nil
			}
		}
		if version && enc != nil {
			data, _ := enc.Decoded()
			return data, true, nil
		}
	}
	return nil, false, nil
}

// decryptPGPMIME decrypts a PGP/MIME post: its content becomes the MIME
// entity inside, its real subject the one inside (protected headers).
func (op *opener) decryptPGPMIME(data []byte) (*pgpMIMESigned, *reply.Refusal) {
	n := len(op.sigs)
	d, refusal := op.decrypt(data)
	if refusal != nil {
		return nil, refusal
	}
	if len(op.sigs) > n {
		op.sigs[n].whole = true // PGP/MIME encryption is the whole post
	}
	plaintext := message.ToCRLF(d.Plaintext)
	inner, err := message.Parse(plaintext, op.r.Limits)
	if err != nil {
		// The reason may quote the decrypted text: it stays here.
		return nil, reply.New(reply.Crypto, "the decrypted message is not a valid MIME entity (RFC 3156 §4 wants a MIME entity inside the encryption)")
	}
	c := &op.o.content
	if subject, ok := inner.Header.Get("Subject"); ok {
		// Protected headers: the real subject travels inside.
		c.Subject = subject
	}
	// A plain copy is not the encrypted entity: the client's
	// protected-headers parameter does not belong on it.
	c.Fields = dropContentTypeParam(inner.ContentFields(), "protected-headers")
	c.Entity = inner.Root
	op.top = inner.Root
	if !d.SignatureOK || len(d.Signature) == 0 {
		return nil, nil
	}
	s := &pgpMIMESigned{entity: plaintext, signature: d.Signature}
	switch {
	case message.HasNonContentFields(plaintext[:inner.BodyOffset]):
		// The author's own From and Subject would be what a reader's
		// client shows of a signed payload; the list's decisions (From
		// via the list, the subject with its label) must be what members
		// see, and the signature cannot cover those.
		op.o.notKept = "the author's signature was verified by the list; it covers the author's own From and Subject, which the list rewrites, so it is not kept in the copies"
	case !bytes.Equal(plaintext, d.Plaintext) && !op.verifyCanonical(plaintext, d.Signature):
		// RFC 3156 §5: signed data is canonical (CRLF). Text signatures
		// (neomutt, gpg --textmode) are made over CRLF whatever the
		// client's line ends, and verify over the CRLF form; a binary
		// signature over LF text cannot travel in MIME.
		op.o.notKept = "the author's signature was verified by the list; it was made over line ends that mail cannot carry (RFC 3156 §5 wants CRLF), so it is not kept in the copies"
	default:
		s.keep = true
	}
	return s, nil
}

// verifyCanonical checks signature packets over the canonical (CRLF)
// form of a decrypted entity.
func (op *opener) verifyCanonical(entity, signature []byte) bool {
	ok, _, _ := pgp.VerifyDetached(entity, signature, op.author, op.snap.Now)
	return ok
}

// decrypt decrypts one OpenPGP message to the list key within the
// post's plaintext budget, and records its signature.
func (op *opener) decrypt(data []byte) (*pgp.Decrypted, *reply.Refusal) {
	snap := op.snap
	if op.decryptions++; op.decryptions > maxDecryptions {
		return nil, reply.New(reply.Crypto, "the message holds more than %d encrypted OpenPGP blocks; send it as one PGP/MIME message", maxDecryptions)
	}
	key := op.r.Keys.ListKey(snap.List, snap.Secrets)
	if key == nil {
		return nil, reply.InternalError(fmt.Errorf("list %s has no usable OpenPGP key", snap.List.Address))
	}
	if op.budget <= 0 {
		return nil, op.tooLarge()
	}
	d, err := pgp.DecryptWithin(data, key, op.author, snap.Now, op.budget, &op.keyAttempts)
	var notForUs *pgp.ErrNotForList
	var tooLarge *pgp.ErrTooLarge
	switch {
	case errors.As(err, &notForUs):
		return nil, reply.New(reply.NotForUs, "the message is encrypted to %s, not to the key of %s (%s); encrypt to the list's key (isaclist list key, or the Autocrypt header of any list mail) so the list can read it",
			compose.Truncate(strings.Join(notForUs.KeyIDs, ", "), 160), snap.List.DisplayName(), key.Fingerprint())
	case errors.As(err, &tooLarge):
		return nil, op.tooLarge()
	case errors.Is(err, pgp.ErrCompressionBomb):
		return nil, reply.New(reply.Crypto, "the OpenPGP message's compressed data expands more than %d times its size, which %s refuses (a compression bomb); send it without compression",
			pgp.MaxCompressionRatio, snap.List.DisplayName())
	case err != nil:
		// pgp's errors name no decrypted byte (see package pgp).
		return nil, reply.New(reply.Crypto, "the OpenPGP message could not be decrypted: %s", compose.Truncate(strings.TrimPrefix(err.Error(), "pgp: "), 160))
	}
	op.budget -= int64(len(d.Plaintext))
	op.o.pgp.encrypted = true
	if d.Signed {
		op.sigs = append(op.sigs, sigCheck{ok: d.SignatureOK, keyID: d.SignerKeyID, note: d.SignatureError})
	}
	return d, nil
}
