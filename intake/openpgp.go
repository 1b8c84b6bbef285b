package intake

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
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

// opened is a post after decryption and signature checks, OpenPGP and
// S/MIME alike.
type opened struct {
	content compose.Content
	// signed, signatureOK and signatureNote sum up every signature
	// found, of either kind: what --require-signature asks of a post.
	signed        bool
	signatureOK   bool
	signatureNote string // why not OK
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
	// triedSigner: a foreign S/MIME signature's own certificate was tried.
	triedSigner bool
	o           *opened
	// budget is what decrypted plaintext may still add.
	budget              int64
	decryptions, checks int
	sigs                []sigCheck
}

// sigCheck is one signature found.
type sigCheck struct {
	ok    bool
	keyID string
	note  string
	smime bool
}

// open decrypts a post encrypted to the list and checks an author's
// signatures against their registered key. A post with nothing to open
// comes back as its own content.
func (r *Receiver) open(snap *snapshot, member *store.Member, msg *message.Message) (*opened, *reply.Refusal) {
	op := &opener{r: r, snap: snap, o: &opened{}, budget: r.maxPlaintext()}
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
	d, refusal := op.decrypt(data)
	if refusal != nil {
		return nil, refusal
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
	d, err := pgp.Decrypt(data, key, op.author, snap.Now, op.budget)
	var notForUs *pgp.ErrNotForList
	var tooLarge *pgp.ErrTooLarge
	switch {
	case errors.As(err, &notForUs):
		return nil, reply.New(reply.NotForUs, "the message is encrypted to %s, not to the key of %s (%s); encrypt to the list's key (isaclist list key, or the Autocrypt header of any list mail) so the list can read it",
			strings.Join(notForUs.KeyIDs, ", "), snap.List.DisplayName(), key.Fingerprint())
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

// rebuild makes the content from what walk gave.
func (op *opener) rebuild(head []byte, body [][]byte) *reply.Refusal {
	size := int64(len(head))
	for _, b := range body {
		size += int64(len(b))
	}
	if size > op.r.maxPlaintext() {
		return op.tooLarge()
	}
	fields := strings.TrimSuffix(string(head), "\r\n")
	content, err := compose.SyntheticContent(fields, bytes.Join(body, nil))
	if err != nil {
		// The reason may name decrypted content: not repeated.
		return reply.New(reply.Malformed, "the message's MIME structure cannot be kept once its OpenPGP parts are opened; send it as PGP/MIME (RFC 3156)")
	}
	content.Subject = op.o.content.Subject
	op.o.content = content
	return nil
}

// fieldsHead writes content fields as an entity header.
func fieldsHead(fields []mailhdr.Field) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.Raw)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// dropContentTypeParam returns fields with a parameter of Content-Type
// removed (the field rewritten only if it had the parameter).
func dropContentTypeParam(fields []mailhdr.Field, param string) []mailhdr.Field {
	out := make([]mailhdr.Field, 0, len(fields))
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Content-Type") {
			if mt, params, err := message.ParseMediaType(f.Value); err == nil {
				if _, ok := params[param]; ok {
					delete(params, param)
					v := mime.FormatMediaType(mt, params)
					f = mailhdr.Field{Name: "Content-Type", Value: v, Raw: []byte(compose.FoldField("Content-Type", v))}
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// walk opens what the entity p (whose header is head) holds, depth first:
// signatures are checked, encrypted blocks decrypted. It returns the
// entity's header and body as the copies have them, and whether anything
// changed; what did not change stays byte for byte. boundaries are those
// of the multiparts around p: no new text may begin a line with one.
func (op *opener) walk(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	unchanged := func() ([]byte, [][]byte, bool, *reply.Refusal) { return head, [][]byte{p.Body()}, false, nil }
	switch {
	case !p.Readable:
		return unchanged()
	case p.MediaType == "message/rfc822" || p.MediaType == "message/global":
		// A forwarded message is an attachment, and its signatures are
		// its own author's, shown under its own From.
		return unchanged()
	case p.MediaType == "multipart/signed" && strings.EqualFold(p.Params["protocol"], "application/pgp-signature"):
		return op.signedPart(p, head, boundaries)
	case isSMIME(p):
		return op.smimePart(p, head, boundaries)
	case p.IsMultipart() && len(p.Children) > 0:
		inner := append(boundaries[:len(boundaries):len(boundaries)], p.Boundary())
		gaps := p.Gaps()
		body := [][]byte{gaps[0]}
		changed := false
		for i, c := range p.Children {
			ch, cb, cc, refusal := op.walk(c, c.Head(), inner)
			if refusal != nil {
				return nil, nil, false, refusal
			}
			changed = changed || cc
			body = append(append(append(body, ch), cb...), gaps[i+1])
		}
		if !changed {
			return unchanged()
		}
		return head, body, true, nil
	case p.MediaType == "text/plain" || p.MediaType == "text/html":
		return op.text(p, head, boundaries)
	}
	return unchanged()
}

// signedPart checks a multipart/signed (RFC 3156 §5). It stays as it is
// only if the author's registered key made the signature and the signed
// part needs no change and carries no header fields of its own (which a
// reader's client would show as the message's); otherwise it gives way to
// its signed part: a signature that is not the author's is removed, and
// the text it covered stays.
func (op *opener) signedPart(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	if len(p.Children) != 2 {
		op.sigs = append(op.sigs, sigCheck{note: "malformed multipart/signed"})
		return head, [][]byte{p.Body()}, false, nil
	}
	if refusal := op.check(); refusal != nil {
		return nil, nil, false, refusal
	}
	signed := p.Children[0]
	var sc sigCheck
	if sig, err := p.Children[1].Decoded(); err != nil {
		sc.note = "unreadable signature part"
	} else {
		// RFC 3156 §5: the signed data is the first part, headers
		// included, exactly as it stands between the boundaries.
		sc.ok, sc.keyID, sc.note = pgp.VerifyDetached(signed.Bytes(), sig, op.author, op.snap.Now)
		if op.author == nil && !sc.ok {
			sc.note = "no key on record for the author"
		}
	}
	op.sigs = append(op.sigs, sc)
	sh, sb, changed, refusal := op.walk(signed, signed.Head(), boundaries)
	if refusal != nil {
		return nil, nil, false, refusal
	}
	protected := message.HasNonContentFields(signed.Head())
	switch {
	case sc.ok && !changed && !protected:
		return head, [][]byte{p.Body()}, false, nil
	case sc.ok && protected:
		op.o.notKept = "the author's signature was verified by the list; it covers the author's own From and Subject, which the list rewrites, so it is not kept in the copies"
	case sc.ok:
		op.o.notKept = "the author's signature was verified by the list; it is not kept in the copies, which show what the list opened inside the signed text"
	default:
		op.o.pgp.removed++
	}
	return message.ContentHead(sh), sb, true, nil
}

// text opens the inline OpenPGP blocks of a text part.
func (op *opener) text(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	unchanged := func() ([]byte, [][]byte, bool, *reply.Refusal) { return head, [][]byte{p.Body()}, false, nil }
	form, wide := message.UnicodeFormOf(p.Charset(), nil)
	if message.IdentityEncoding(p.TransferEncoding) && !wide && !pgp.HasArmor(p.Body()) {
		return unchanged() // the common case, without decoding anything
	}
	decoded, err := p.Decoded()
	if err != nil {
		return unchanged()
	}
	partCS := message.CanonicalCharset(p.Charset())
	cs, text := partCS, decoded
	if wide {
		// UTF-16 and UTF-32 text is read, and written back, as UTF-8.
		form, _ = message.UnicodeFormOf(p.Charset(), decoded)
		s, err := message.DecodeCharset(p.Charset(), decoded)
		if err != nil {
			return unchanged()
		}
		cs, text = "utf-8", []byte(s)
	}
	if !pgp.HasArmor(text) {
		return unchanged()
	}
	var out []byte
	var outCS string
	var changed bool
	var refusal *reply.Refusal
	if p.MediaType == "text/html" {
		out, outCS, changed, refusal = op.inlineHTML(text, cs)
	} else {
		out, outCS, changed, refusal = op.inlinePlain(text, cs)
	}
	if refusal != nil || !changed {
		if refusal == nil {
			return unchanged()
		}
		return nil, nil, false, refusal
	}
	if wide && outCS == "utf-8" {
		out = append(append([]byte{}, decoded[:form.BOM]...), form.Encode(string(out))...)
		outCS = partCS
	}
	var set [][2]string
	if outCS != partCS {
		params := map[string]string{}
		for k, v := range p.Params {
			params[k] = v
		}
		params["charset"] = outCS
		set = append(set, [2]string{"Content-Type", mime.FormatMediaType(p.MediaType, params)})
	}
	cte := p.TransferEncoding
	if wide && cte != "base64" {
		// UTF-16 and UTF-32 octets are not lines: base64 carries them.
		cte = "base64"
	}
	if message.IdentityEncoding(cte) {
		switch {
		case longLines(out) || message.CheckFraming(out) != nil:
			cte = "quoted-printable"
		case !isASCIIBytes(out) && (cte == "" || cte == "7bit"):
			cte = "8bit"
		}
	}
	enc, err := message.Encode(cte, out)
	if err != nil || hasDelimiter(enc, boundaries) {
		// Base64 cannot begin a line with "--": the part keeps its
		// place among its siblings whatever the decrypted text holds.
		cte, enc = "base64", message.Base64Lines(out)
	}
	if cte != p.TransferEncoding {
		set = append(set, [2]string{"Content-Transfer-Encoding", cte})
	}
	if len(set) == 0 {
		return head, [][]byte{enc}, true, nil
	}
	return message.EditHead(head, nil, set...), [][]byte{enc}, true, nil
}

// segment is a piece of a text part's new text, in a charset.
type segment struct {
	b  []byte
	cs string // canonical
}

// inlinePlain decrypts the encrypted blocks of a plain text (in charset
// cs) in place and checks its cleartext-signed blocks. It returns the new
// text and its charset.
func (op *opener) inlinePlain(text []byte, cs string) ([]byte, string, bool, *reply.Refusal) {
	blocks := pgp.FindBlocks(text)
	var segs []segment
	changed := false
	last := 0
	for _, b := range blocks {
		segs = append(segs, segment{text[last:b.Start], cs})
		block := text[b.Start:b.End]
		switch b.Kind {
		case pgp.BlockTruncated:
			if bytes.HasPrefix(block, []byte("-----BEGIN PGP MESSAGE-----")) {
				return nil, "", false, reply.New(reply.Crypto, "the inline OpenPGP message is truncated (no END PGP MESSAGE line); send it again")
			}
			segs = append(segs, segment{block, cs})
		case pgp.BlockMessage:
			pt, ptCS, refusal := op.decryptInline(block, cs)
			if refusal != nil {
				return nil, "", false, refusal
			}
			segs = append(segs, segment{pt, ptCS})
			changed = true
		case pgp.BlockSigned:
			segs = append(segs, segment{block, cs})
		}
		last = b.End
	}
	segs = append(segs, segment{text[last:], cs})
	out, outCS := joinSegments(segs, cs)
	// Cleartext-signed blocks, in the text as it came or in what was
	// decrypted.
	out, signedChanged, refusal := op.clearsigned(out)
	if refusal != nil {
		return nil, "", false, refusal
	}
	return out, outCS, changed || signedChanged, nil
}

// clearsigned checks the cleartext-signed blocks of a text. The author's
// stay as they are (members verify them too); any other loses its
// signature, and a note says so where it stood.
func (op *opener) clearsigned(text []byte) ([]byte, bool, *reply.Refusal) {
	var out []byte
	changed := false
	last := 0
	for _, b := range pgp.FindBlocks(text) {
		if b.Kind != pgp.BlockSigned {
			continue
		}
		if refusal := op.check(); refusal != nil {
			return nil, false, refusal
		}
		c := pgp.VerifyClearsigned(text[b.Start:b.End], op.author, op.snap.Now)
		op.sigs = append(op.sigs, sigCheck{ok: c.SignatureOK, keyID: c.KeyID, note: c.Reason})
		if c.SignatureOK || c.Text == nil {
			continue // the author's; or not a signed block any reader can verify
		}
		out = append(out, text[last:b.Start]...)
		out = append(out, op.signatureNote(c.KeyID)...)
		out = append(out, "\r\n"...)
		out = append(out, c.Text...)
		last = b.End
		changed = true
		op.o.pgp.removed++
	}
	if !changed {
		return text, false, nil
	}
	return append(out, text[last:]...), true, nil
}

// signatureNote is the line that stands where a signature was removed.
func (op *opener) signatureNote(keyID string) string {
	by := "a key that is not the author's registered key"
	if keyID != "" {
		by = "key " + keyID + ", not the author's registered key"
	}
	return "[" + op.snap.List.DisplayName() + ": an OpenPGP signature on the text below was removed; it was made by " + by + "]"
}

// decryptInline decrypts one armored block of a text part whose charset
// is partCS, and returns the plaintext (CRLF line ends) in the part's
// charset where it can be written in it, else in its own.
func (op *opener) decryptInline(block []byte, partCS string) ([]byte, string, *reply.Refusal) {
	d, refusal := op.decrypt(block)
	if refusal != nil {
		return nil, "", refusal
	}
	pt := message.ToCRLF(d.Plaintext)
	if isASCIIBytes(pt) {
		return pt, partCS, nil
	}
	ptCS := plaintextCharset(d.ArmorCharset, pt, partCS)
	if ptCS == partCS {
		return pt, partCS, nil
	}
	if s, err := message.DecodeCharset(ptCS, pt); err == nil {
		if b, err := message.EncodeCharset(partCS, s); err == nil {
			return b, partCS, nil
		}
	}
	return pt, ptCS, nil
}

// plaintextCharset decides the charset of decrypted text as a mail client
// would: the armor's Charset header if it names one; else UTF-8 if the
// text reads as UTF-8 (latin-1 text almost never does); else the part's
// charset (the member's client wrote both); else, for a part labelled
// US-ASCII (armor is ASCII), Windows-1252.
func plaintextCharset(armorCharset string, pt []byte, partCS string) string {
	if armorCharset != "" {
		if _, err := message.LookupCharset(armorCharset); err == nil {
			return message.CanonicalCharset(armorCharset)
		}
	}
	switch {
	case utf8.Valid(pt):
		return "utf-8"
	case partCS != "us-ascii" && partCS != "utf-8":
		return partCS
	}
	return "windows-1252"
}

// joinSegments joins the pieces of a text. When they are not all in the
// part's charset: a part labelled US-ASCII whose own text is ASCII takes
// the one charset of what was decrypted; anything else becomes UTF-8.
func joinSegments(segs []segment, cs string) ([]byte, string) {
	var others []string
	asciiRest := true
	for _, s := range segs {
		switch {
		case s.cs == cs:
			asciiRest = asciiRest && isASCIIBytes(s.b)
		case !containsString(others, s.cs):
			others = append(others, s.cs)
		}
	}
	join := func() []byte {
		var out []byte
		for _, s := range segs {
			out = append(out, s.b...)
		}
		return out
	}
	switch {
	case len(others) == 0:
		return join(), cs
	case len(others) == 1 && asciiRest && cs == "us-ascii":
		return join(), others[0]
	}
	var out []byte
	for _, s := range segs {
		if u, err := message.DecodeCharset(s.cs, s.b); err == nil {
			out = append(out, u...)
		} else {
			out = append(out, s.b...)
		}
	}
	return out, "utf-8"
}

// inlineHTML opens the armored blocks of an HTML text (in charset cs):
// an encrypted block becomes its plaintext, escaped, in a <pre>; a
// cleartext-signed block not by the author becomes a note and its text.
// (The signatures of HTML blocks are not counted: the text alternative
// carries the same, and readers' clients verify that one.)
func (op *opener) inlineHTML(text []byte, cs string) ([]byte, string, bool, *reply.Refusal) {
	var segs []segment
	changed := false
	last := 0
	for _, b := range pgp.FindHTMLBlocks(text) {
		segs = append(segs, segment{text[last:b.Start], cs})
		block := text[b.Start:b.End]
		switch b.Kind {
		case pgp.BlockTruncated:
			if bytes.HasPrefix(block, []byte("-----BEGIN PGP MESSAGE-----")) {
				return nil, "", false, reply.New(reply.Crypto, "the inline OpenPGP message in the HTML part is truncated (no END PGP MESSAGE); send it again")
			}
			segs = append(segs, segment{block, cs})
		case pgp.BlockMessage:
			pt, ptCS, refusal := op.decryptInline(pgp.ArmorFromHTML(pgp.HTMLText(block)), cs)
			if refusal != nil {
				return nil, "", false, refusal
			}
			segs = append(segs, segment{[]byte("<pre style=\"white-space:pre-wrap\">"), cs}, segment{escapeHTML(pt), ptCS}, segment{[]byte("</pre>"), cs})
			changed = true
		case pgp.BlockSigned:
			if refusal := op.check(); refusal != nil {
				return nil, "", false, refusal
			}
			c := pgp.VerifyClearsigned(pgp.HTMLText(block), op.author, op.snap.Now)
			if c.SignatureOK || c.Text == nil {
				segs = append(segs, segment{block, cs})
				break
			}
			segs = append(segs, segment{[]byte("<p>" + escapeString(op.signatureNote(c.KeyID)) + "</p><pre style=\"white-space:pre-wrap\">"), cs},
				segment{escapeHTML(c.Text), cs}, segment{[]byte("</pre>"), cs})
			changed = true
		}
		last = b.End
	}
	if !changed {
		return nil, "", false, nil
	}
	segs = append(segs, segment{text[last:], cs})
	out, outCS := joinSegments(segs, cs)
	return out, outCS, true, nil
}

// escapeHTML escapes text of any ASCII-compatible charset for HTML: only
// ASCII bytes change.
func escapeHTML(b []byte) []byte {
	var out bytes.Buffer
	for _, c := range b {
		switch c {
		case '&':
			out.WriteString("&amp;")
		case '<':
			out.WriteString("&lt;")
		case '>':
			out.WriteString("&gt;")
		case '"':
			out.WriteString("&#34;")
		case '\'':
			out.WriteString("&#39;")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

func escapeString(s string) string { return string(escapeHTML([]byte(s))) }

// hasDelimiter reports whether a line of b starts with the delimiter of
// one of boundaries (RFC 2046 §5.1.1).
func hasDelimiter(b []byte, boundaries []string) bool {
	for _, bd := range boundaries {
		if bytes.HasPrefix(b, []byte("--"+bd)) || bytes.Contains(b, []byte("\n--"+bd)) {
			return true
		}
	}
	return false
}

// longLines reports a line longer than RFC 5322 §2.1.1 allows.
func longLines(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > 998
		}
		if i > 999 {
			return true
		}
		b = b[i+1:]
	}
	return false
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}
