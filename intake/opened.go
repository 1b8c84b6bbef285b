package intake

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
)

// Opening a post: what the list found of its cryptography (OpenPGP here
// and in pgpmime.go and inlinepgp.go, S/MIME in smime.go), the walk
// through its MIME tree (walk.go), and the bounds on the work one post
// may cause.
//
// Nothing decrypted is quoted in a refusal, a log line, an error or a
// notice: every reason given here is a fixed sentence, a number or a key
// ID (pgp's and smime's errors are built the same way).

// opened is a post after decryption and signature checks, OpenPGP and
// S/MIME alike.
type opened struct {
	content compose.Content
	// signed, signatureOK and signatureNote sum up every signature
	// found, of either kind: what --require-signature asks of a post.
	signed        bool
	signatureOK   bool
	signatureNote string // why not OK
	// signedWhole: a signature that counts covers the entity that stands
	// for the whole post (what the key and cert commands ask, beside
	// signatureOK: a member's old signed message forwarded inside a
	// multipart/mixed, or a clearsigned block quoted in a text, must not
	// vouch for a new key or certificate beside it).
	signedWhole bool
	// pgp and smime are what the list found of each kind: what the
	// copies' X-Isaclist-OpenPGP and X-Isaclist-SMIME fields say.
	pgp, smime cryptoFindings
	// notKept says why the author's valid signature is not in the copies.
	notKept string
}

// cryptoFindings is what the list found of one kind of cryptography in
// a post.
type cryptoFindings struct {
	encrypted   bool
	signed      bool
	signatureOK bool
	note        string // why a signature is not OK
	fingerprint string // the author's key or certificate that verified
	// removed counts signatures taken out of the copies: not the author's.
	removed int
	// signerCert is the certificate a signature not by the author's
	// registered one was made with, when the signature verifies with it:
	// a new certificate a member sends with the cert command by signing
	// with it.
	signerCert *x509.Certificate
}

// header is the X-Isaclist-OpenPGP value that tells members what the list
// found: whether the post was encrypted to the list and signed by its
// author's registered key.
func (o *opened) header() string {
	return o.pgp.describe("key", o.notKept)
}

// smimeHeader is the X-Isaclist-SMIME value: the same for S/MIME, with
// the author's registered certificate.
func (o *opened) smimeHeader() string {
	return o.smime.describe("certificate", "")
}

func (f cryptoFindings) describe(what, notKept string) string {
	var parts []string
	if f.encrypted {
		parts = append(parts, "encrypted to the list")
	}
	switch {
	case f.signatureOK:
		parts = append(parts, "signature valid, "+what+" "+f.fingerprint)
	case f.signed:
		parts = append(parts, "signature NOT verified: "+f.note)
	}
	if f.removed == 1 {
		parts = append(parts, "a signature not by the author's registered "+what+" was removed")
	} else if f.removed > 1 {
		parts = append(parts, fmt.Sprintf("%d signatures not by the author's registered %s were removed", f.removed, what))
	}
	if notKept != "" {
		parts = append(parts, notKept)
	}
	return strings.Join(parts, "; ")
}

// Bounds on the OpenPGP work one post may cause: each block decrypted and
// each signature checked costs a public-key operation.
const (
	maxDecryptions     = 16
	maxSignatureChecks = 16
	// defaultMaxPlaintext applies when the Receiver has no MaxPlaintext
	// (the default of smtp.max_message_bytes).
	defaultMaxPlaintext = 25 << 20
)

// maxPlaintext is what a post's decrypted and decompressed content may
// grow to: max_message_bytes, as the daemon sets it.
func (r *Receiver) maxPlaintext() int64 {
	if r.MaxPlaintext > 0 {
		return r.MaxPlaintext
	}
	return defaultMaxPlaintext
}

// opener opens one post.
type opener struct {
	r      *Receiver
	snap   *snapshot
	author *pgp.PublicKey
	// authorCert is the author's registered S/MIME certificate.
	authorCert *x509.Certificate
	// top is the entity that stands for the whole post: the root, or
	// what was inside an S/MIME root.
	top *message.Part
	// textTop: the text being opened stands for the whole post.
	textTop bool
	// triedSigner: a foreign S/MIME signature's own certificate was tried.
	triedSigner bool
	o           *opened
	// budget is what decrypted plaintext may still add; keyAttempts, the
	// list-key operations the post's OpenPGP blocks may still cost
	// together (each block could take pgp.MaxKeyAttempts of its own).
	budget              int64
	keyAttempts         int
	decryptions, checks int
	sigs                []sigCheck
}

// sigCheck is one signature found.
type sigCheck struct {
	ok    bool
	keyID string
	note  string
	smime bool
	// whole: the signature covers the entity that stood for the whole
	// post when it was checked.
	whole bool
}

// open decrypts a post encrypted to the list and checks an author's
// signatures against their registered key. A post with nothing to open
// comes back as its own content.
func (r *Receiver) open(snap *snapshot, member *store.Member, msg *message.Message) (*opened, *reply.Refusal) {
	op := &opener{r: r, snap: snap, o: &opened{}, budget: r.maxPlaintext(), keyAttempts: pgp.MaxKeyAttempts}
	if member != nil && len(member.Key) > 0 {
		op.author, _ = r.Keys.MemberKey(member.Key)
	}
	if member != nil && len(member.Cert) > 0 {
		op.authorCert, _ = x509.ParseCertificate(member.Cert)
	}
	op.o.content = compose.Content{Fields: msg.ContentFields(), Entity: msg.Root, Subject: msg.Get("Subject")}
	op.top = msg.Root
	data, isPGPMIME, refusal := pgpMIMEData(msg.Root)
	if refusal != nil {
		return nil, refusal
	}
	var resign *pgpMIMESigned
	if isPGPMIME {
		if resign, refusal = op.decryptPGPMIME(data); refusal != nil {
			return nil, refusal
		}
	}
	c := op.o.content
	head, body, changed, refusal := op.walk(c.Entity, fieldsHead(c.Fields), nil)
	if refusal != nil {
		return nil, refusal
	}
	switch {
	case resign != nil && resign.keep && !changed:
		// Keep the author's signature verifiable for the members: the
		// signed data was exactly this entity, so it becomes the first
		// part of a multipart/signed with the signature as the second.
		resigned, err := compose.Resigned(resign.entity, resign.signature, snap.Now)
		if err != nil {
			// Its reason could name what the entity holds: not logged.
			return nil, reply.InternalError(errors.New("the author's signed entity could not be re-emitted as multipart/signed"))
		}
		resigned.Subject = c.Subject
		op.o.content = resigned
	case changed:
		if resign != nil && resign.keep {
			op.o.notKept = "the author's signature was verified by the list; it is not kept in the copies, which show what the list opened inside the signed text"
		}
		if refusal := op.rebuild(head, body); refusal != nil {
			return nil, refusal
		}
	}
	op.finish()
	return op.o, nil
}

func (op *opener) tooLarge() *reply.Refusal {
	return reply.New(reply.TooBig, "the message is larger than the %d bytes %s takes once decrypted; send a link or a smaller attachment",
		op.r.maxPlaintext(), op.snap.List.DisplayName())
}

// check counts one signature verification against the bound.
func (op *opener) check() *reply.Refusal {
	if op.checks++; op.checks > maxSignatureChecks {
		return reply.New(reply.Crypto, "the message carries more than %d OpenPGP signatures; send fewer", maxSignatureChecks)
	}
	return nil
}

// finish sums up the signatures found: the post counts as signed by its
// author only if every signature in it is the author's and verifies.
func (op *opener) finish() {
	o := op.o
	all := summarize(op.sigs, func(sigCheck) bool { return true })
	o.signed, o.signatureOK, o.signatureNote = all.signed, all.signatureOK, all.note
	for _, s := range op.sigs {
		if s.ok && s.whole {
			o.signedWhole = o.signatureOK
		}
	}
	pgpSigs := summarize(op.sigs, func(s sigCheck) bool { return !s.smime })
	o.pgp.signed, o.pgp.signatureOK, o.pgp.note = pgpSigs.signed, pgpSigs.signatureOK, pgpSigs.note
	if pgpSigs.anyOK && op.author != nil {
		o.pgp.fingerprint = op.author.Fingerprint()
	}
	smimeSigs := summarize(op.sigs, func(s sigCheck) bool { return s.smime })
	o.smime.signed, o.smime.signatureOK, o.smime.note = smimeSigs.signed, smimeSigs.signatureOK, smimeSigs.note
	if smimeSigs.anyOK && op.authorCert != nil {
		o.smime.fingerprint = smime.Info(op.authorCert).Fingerprint
	}
}

// sigSummary is what a set of signatures amounts to.
type sigSummary struct {
	signed, signatureOK, anyOK bool
	note                       string // the first failure's
}

func summarize(sigs []sigCheck, which func(sigCheck) bool) sigSummary {
	var s sigSummary
	for _, c := range sigs {
		if !which(c) {
			continue
		}
		if !s.signed {
			s.signed, s.signatureOK = true, true
		}
		if c.ok {
			s.anyOK = true
			continue
		}
		if s.signatureOK {
			s.signatureOK = false
			s.note = c.note
		}
	}
	return s
}
