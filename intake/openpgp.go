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
	"github.com/isaclist/isaclist/store"
)

// OpenPGP on the way in: members' posts encrypted to the list (PGP/MIME,
// RFC 3156, or inline) and their signatures, checked against the author's
// registered key. The cryptography is package pgp's; this is how the MIME
// of a post leads to it.

// opened is a post after decryption and signature checks.
type opened struct {
	content       compose.Content
	signed        bool
	signatureOK   bool
	signatureNote string // why not OK, or the signer
	encrypted     bool
	fingerprint   string // the author key that verified
}

// header is the X-Isaclist-OpenPGP value that tells members what the list
// found: whether the post was encrypted to the list and signed by its
// author's registered key.
func (o *opened) header() string {
	var parts []string
	if o.encrypted {
		parts = append(parts, "encrypted to the list")
	}
	switch {
	case o.signatureOK:
		parts = append(parts, "signature valid, key "+o.fingerprint)
	case o.signed:
		parts = append(parts, "signature NOT verified: "+o.signatureNote)
	}
	return strings.Join(parts, "; ")
}

// maxPlaintext bounds what a decrypted post may grow to.
const maxPlaintext = 64 << 20

// open decrypts a post encrypted to the list and checks an author's
// signature against their registered key. A plain post comes back as its
// own content.
func (r *Receiver) open(snap *snapshot, member *store.Member, msg *message.Message) (*opened, *reply.Refusal) {
	root := msg.Root
	subject := msg.Get("Subject")
	plain := &opened{content: compose.Content{Fields: msg.ContentFields(), Entity: root, Subject: subject}}
	var author *pgp.PublicKey
	if member != nil && len(member.Key) > 0 {
		author, _ = pgp.ParsePublicKey(member.Key)
	}
	switch {
	case root.MediaType == "multipart/encrypted" && strings.EqualFold(root.Params["protocol"], "application/pgp-encrypted"):
		if len(root.Children) != 2 {
			return nil, reply.New(reply.Crypto, "the PGP/MIME message is malformed (RFC 3156 §4 wants two parts, the second holding the encrypted data)")
		}
		data, err := root.Children[1].Decoded()
		if err != nil {
			return nil, reply.New(reply.Crypto, "the encrypted part's transfer encoding cannot be read")
		}
		return r.decrypt(snap, author, data, true, subject)
	case root.MediaType == "text/plain" && bytes.Contains(root.Body(), []byte("-----BEGIN PGP MESSAGE-----")):
		text, err := root.Decoded()
		if err != nil {
			return nil, reply.New(reply.Crypto, "the message's transfer encoding cannot be read")
		}
		start := bytes.Index(text, []byte("-----BEGIN PGP MESSAGE-----"))
		end := bytes.Index(text, []byte("-----END PGP MESSAGE-----"))
		if start < 0 || end < start {
			return nil, reply.New(reply.Crypto, "the inline OpenPGP message is truncated (no END PGP MESSAGE line)")
		}
		return r.decrypt(snap, author, text[start:end+len("-----END PGP MESSAGE-----")], false, subject)
	case root.MediaType == "multipart/signed" && strings.EqualFold(root.Params["protocol"], "application/pgp-signature"):
		plain.signed = true
		if len(root.Children) != 2 {
			plain.signatureNote = "malformed multipart/signed"
			return plain, nil
		}
		sig, err := root.Children[1].Decoded()
		if err != nil {
			plain.signatureNote = "unreadable signature part"
			return plain, nil
		}
		if author == nil {
			plain.signatureNote = "no key on record for the author"
			return plain, nil
		}
		// RFC 3156 §5: the signed data is the first part, headers
		// included, exactly as it stands between the boundaries.
		ok, _, why := pgp.VerifyDetached(root.Children[0].Bytes(), sig, author, snap.Now)
		plain.signatureOK, plain.signatureNote = ok, why
		if ok {
			plain.fingerprint = author.Fingerprint()
		}
		return plain, nil
	}
	return plain, nil
}

// decrypt decrypts an OpenPGP message to the list key. For PGP/MIME the
// plaintext is a MIME entity; for inline PGP, text.
func (r *Receiver) decrypt(snap *snapshot, author *pgp.PublicKey, data []byte, pgpMIME bool, outerSubject string) (*opened, *reply.Refusal) {
	key := r.Keys.ListKey(snap.List, snap.Secrets)
	if key == nil {
		return nil, reply.InternalError(fmt.Errorf("list %s has no usable OpenPGP key", snap.List.Address))
	}
	d, err := pgp.Decrypt(data, key, author, snap.Now, maxPlaintext)
	var notForUs *pgp.ErrNotForList
	switch {
	case errors.As(err, &notForUs):
		return nil, reply.New(reply.NotForUs, "the message is encrypted to %s, not to the key of %s (%s); encrypt to the list's key (isaclist list key, or the Autocrypt header of any list mail) so the list can read it",
			strings.Join(notForUs.KeyIDs, ", "), snap.List.DisplayName(), key.Fingerprint())
	case err != nil:
		return nil, reply.New(reply.Crypto, "the OpenPGP message could not be decrypted: %s", compose.Truncate(err.Error(), 160))
	}
	o := &opened{encrypted: true, signed: d.Signed, signatureOK: d.SignatureOK, signatureNote: d.SignatureError}
	if d.SignatureOK && author != nil {
		o.fingerprint = author.Fingerprint()
	}
	plaintext := message.ToCRLF(d.Plaintext)
	if !pgpMIME {
		content, err := compose.SyntheticContent("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", plaintext)
		if err != nil {
			return nil, reply.New(reply.Crypto, "the decrypted text cannot be read as MIME")
		}
		content.Subject = outerSubject
		o.content = content
		return o, nil
	}
	inner, err := message.Parse(plaintext, r.Limits)
	if err != nil {
		// The reason may quote the decrypted text: it stays here.
		return nil, reply.New(reply.Crypto, "the decrypted message is not a valid MIME entity (RFC 3156 §4 wants a MIME entity inside the encryption)")
	}
	o.content.Subject = outerSubject
	if subject, ok := inner.Header.Get("Subject"); ok {
		// Protected headers: the real subject travels inside.
		o.content.Subject = subject
	}
	if d.SignatureOK && bytes.Equal(plaintext, d.Plaintext) && len(d.Signature) > 0 {
		// Keep the author's signature verifiable for the members: the
		// signed data was exactly this entity, so it becomes the first
		// part of a multipart/signed with the signature as the second.
		resigned, err := compose.Resigned(plaintext, d.Signature, snap.Now)
		if err != nil {
			return nil, reply.InternalError(err)
		}
		resigned.Subject = o.content.Subject
		o.content = resigned
		return o, nil
	}
	o.content.Fields = inner.ContentFields()
	o.content.Entity = inner.Root
	return o, nil
}
