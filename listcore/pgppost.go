package listcore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// OpenPGP on the way in (members' encrypted or signed posts) and on the way
// out (one encryption for all members, one key packet each).

// opened is a post after decryption and signature checks.
type opened struct {
	content       content
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

// openPost decrypts a post encrypted to the list (PGP/MIME, RFC 3156, or
// inline) and checks an author's signature against their registered key.
// A plain post comes back as its own content.
func (c *Core) openPost(l *store.List, s *store.ListSecrets, member *store.Member, p *parsed, msg []byte) (*opened, *reply.Refusal) {
	body := msg[p.bodyOff:]
	subject, _ := p.hdr.Get("Subject")
	plain := &opened{content: content{body: body, subject: subject}}
	for _, f := range p.hdr.Fields {
		if isContentField(f.Name) {
			plain.content.fields = append(plain.content.fields, f)
		}
	}
	ct, _ := p.hdr.Get("Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	var author *pgp.PublicKey
	if len(member.Key) > 0 {
		author, _ = pgp.ParsePublicKey(member.Key)
	}
	switch {
	case mt == "multipart/encrypted" && strings.EqualFold(params["protocol"], "application/pgp-encrypted"):
		parts, err := splitMultipartRaw(body, params["boundary"])
		if err != nil || len(parts) != 2 {
			return nil, reply.New(reply.Crypto, "the PGP/MIME message is malformed (RFC 3156 §4 wants two parts, the second holding the encrypted data)")
		}
		ph, off, err := mailhdr.Parse(parts[1], c.Limits)
		if err != nil {
			return nil, reply.New(reply.Crypto, "the encrypted part of the PGP/MIME message is malformed: %s", reason(err))
		}
		data, err := decodeCTE(fieldOf(ph, "Content-Transfer-Encoding"), parts[1][off:])
		if err != nil {
			return nil, reply.New(reply.Crypto, "the encrypted part's transfer encoding cannot be read")
		}
		return c.decryptPost(l, s, author, data, true, subject)
	case (mt == "" || mt == "text/plain") && bytes.Contains(body, []byte("-----BEGIN PGP MESSAGE-----")):
		text, err := decodeCTE(fieldOf(p.hdr, "Content-Transfer-Encoding"), body)
		if err != nil {
			return nil, reply.New(reply.Crypto, "the message's transfer encoding cannot be read")
		}
		start := bytes.Index(text, []byte("-----BEGIN PGP MESSAGE-----"))
		end := bytes.Index(text, []byte("-----END PGP MESSAGE-----"))
		if start < 0 || end < start {
			return nil, reply.New(reply.Crypto, "the inline OpenPGP message is truncated (no END PGP MESSAGE line)")
		}
		return c.decryptPost(l, s, author, text[start:end+len("-----END PGP MESSAGE-----")], false, subject)
	case mt == "multipart/signed" && strings.EqualFold(params["protocol"], "application/pgp-signature"):
		parts, err := splitMultipartRaw(body, params["boundary"])
		if err != nil || len(parts) != 2 {
			plain.signed, plain.signatureNote = true, "malformed multipart/signed"
			return plain, nil
		}
		sh, off, err := mailhdr.Parse(parts[1], c.Limits)
		if err != nil {
			plain.signed, plain.signatureNote = true, "malformed signature part"
			return plain, nil
		}
		sig, err := decodeCTE(fieldOf(sh, "Content-Transfer-Encoding"), parts[1][off:])
		if err != nil {
			plain.signed, plain.signatureNote = true, "unreadable signature part"
			return plain, nil
		}
		plain.signed = true
		if author == nil {
			plain.signatureNote = "no key on record for the author"
			return plain, nil
		}
		// RFC 3156 §5: the signed data is the first part, headers
		// included, exactly as it stands between the boundaries.
		ok, _, why := pgp.VerifyDetached(parts[0], sig, author, c.now())
		plain.signatureOK, plain.signatureNote = ok, why
		if ok {
			plain.fingerprint = author.Fingerprint()
		}
		return plain, nil
	}
	return plain, nil
}

func fieldOf(h *mailhdr.Header, name string) string {
	v, _ := h.Get(name)
	return v
}

// decryptPost decrypts an OpenPGP message to the list key. For PGP/MIME
// the plaintext is a MIME entity; for inline PGP, text.
func (c *Core) decryptPost(l *store.List, s *store.ListSecrets, author *pgp.PublicKey, data []byte, pgpMIME bool, outerSubject string) (*opened, *reply.Refusal) {
	key := c.listKey(l, s)
	if key == nil {
		return nil, reply.InternalError(fmt.Errorf("list %s has no usable OpenPGP key", l.Address))
	}
	d, err := pgp.Decrypt(data, key, author, c.now(), maxPlaintext)
	var notForUs *pgp.ErrNotForList
	switch {
	case errors.As(err, &notForUs):
		return nil, reply.New(reply.NotForUs, "the message is encrypted to %s, not to the key of %s (%s); encrypt to the list's key (isaclist list key, or the Autocrypt header of any list mail) so the list can read it",
			strings.Join(notForUs.KeyIDs, ", "), fmtList(l), key.Fingerprint())
	case err != nil:
		return nil, reply.New(reply.Crypto, "the OpenPGP message could not be decrypted: %s", truncate(err.Error(), 160))
	}
	o := &opened{encrypted: true, signed: d.Signed, signatureOK: d.SignatureOK, signatureNote: d.SignatureError}
	if d.SignatureOK && author != nil {
		o.fingerprint = author.Fingerprint()
	}
	plaintext := toCRLF(d.Plaintext)
	if !pgpMIME {
		o.content = content{
			fields:  headerFields("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"),
			body:    plaintext,
			subject: outerSubject,
		}
		return o, nil
	}
	h, off, err := mailhdr.Parse(plaintext, c.Limits)
	if err != nil {
		return nil, reply.New(reply.Crypto, "the decrypted message is not a valid MIME entity: %s", reason(err))
	}
	o.content.subject = outerSubject
	if inner, ok := h.Get("Subject"); ok {
		// Protected headers: the real subject travels inside.
		o.content.subject = inner
	}
	if d.SignatureOK && bytes.Equal(plaintext, d.Plaintext) && len(d.Signature) > 0 {
		// Keep the author's signature verifiable for the members: the
		// signed data was exactly this entity, so it becomes the first
		// part of a multipart/signed with the signature as the second.
		o.content.fields, o.content.body = resigned(plaintext, d.Signature)
		return o, nil
	}
	for _, f := range h.Fields {
		if isContentField(f.Name) {
			o.content.fields = append(o.content.fields, f)
		}
	}
	o.content.body = plaintext[off:]
	return o, nil
}

// resigned wraps a signed MIME entity and its signature as multipart/signed
// (RFC 3156 §5).
func resigned(entity, signature []byte) ([]mailhdr.Field, []byte) {
	boundary := "isaclist-signed-" + NewID(time.Now())
	var b bytes.Buffer
	b.WriteString("This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n")
	b.WriteString("--" + boundary + "\r\n")
	b.Write(entity)
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n")
	b.WriteString("Content-Description: OpenPGP digital signature\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n")
	b.Write(armorSignature(signature))
	b.WriteString("\r\n--" + boundary + "--\r\n")
	fields := headerFields(fmt.Sprintf("Content-Type: multipart/signed; micalg=%s;\r\n protocol=\"application/pgp-signature\"; boundary=\"%s\"\r\n", micalg(signature), boundary))
	return fields, b.Bytes()
}

// armorSignature armors a binary signature packet (RFC 4880 §6.2).
func armorSignature(sig []byte) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN PGP SIGNATURE-----\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(sig)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\r\n")
	crc := crc24(sig)
	b.WriteString("=" + base64.StdEncoding.EncodeToString([]byte{byte(crc >> 16), byte(crc >> 8), byte(crc)}) + "\r\n")
	b.WriteString("-----END PGP SIGNATURE-----\r\n")
	return b.Bytes()
}

func crc24(data []byte) uint32 {
	crc := uint32(0xB704CE)
	for _, c := range data {
		crc ^= uint32(c) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864CFB
			}
		}
	}
	return crc & 0xFFFFFF
}

// micalg is multipart/signed's micalg parameter for a signature (RFC 3156
// §5); sha256 if the packet cannot be read (readers verify regardless).
func micalg(sig []byte) string {
	if m, err := pgp.MicAlg(sig); err == nil {
		return m
	}
	return "pgp-sha256"
}

func headerFields(text string) []mailhdr.Field {
	h, _, err := mailhdr.Parse([]byte(text+"\r\n"), mailhdr.DefaultLimits())
	if err != nil {
		panic("listcore: bad built-in header: " + err.Error())
	}
	return h.Fields
}

// toCRLF makes every line ending CRLF: decrypted text from some clients
// uses LF, and nothing we pass on may hold a bare CR or LF.
func toCRLF(b []byte) []byte {
	if checkFraming(b) == nil {
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

// maxParts bounds the parts splitMultipartRaw returns.
const maxParts = maxMIMEParts

// splitMultipartRaw returns the parts of a multipart body exactly as they
// stand between the boundary lines (headers included; RFC 2046 §5.1.1: the
// CRLF before a boundary line belongs to the boundary).
func splitMultipartRaw(body []byte, boundary string) ([][]byte, error) {
	if boundary == "" || len(boundary) > 70 {
		return nil, errors.New("has a boundary longer than 70 characters (RFC 2046 §5.1.1)")
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	pos := -1
	for i := 0; i <= len(body); {
		lineEnd := bytes.Index(body[i:], []byte("\r\n"))
		var line []byte
		if lineEnd < 0 {
			line = body[i:]
			lineEnd = len(body) - i
		} else {
			line = body[i : i+lineEnd]
		}
		if bytes.HasPrefix(line, delim) {
			rest := bytes.TrimRight(line[len(delim):], " \t")
			if pos >= 0 {
				end := i - 2 // the CRLF before the boundary line
				if end < pos {
					end = pos
				}
				parts = append(parts, body[pos:end])
				if len(parts) > maxParts {
					return nil, errors.New("has too many parts")
				}
			}
			if bytes.Equal(rest, []byte("--")) {
				return parts, nil
			}
			if len(rest) == 0 {
				pos = i + lineEnd + 2
			}
		}
		if i+lineEnd >= len(body) {
			break
		}
		i += lineEnd + 2
	}
	return nil, errors.New("has no closing boundary")
}

// readLabels reads the label of the outer subject and of the real subject
// (inside the encryption), taking the more restrictive; an unreadable label
// in either refuses the post.
func readLabels(outer, inner string) (tlp.Label, error) {
	a, errA := tlp.Read(outer)
	if outer == inner {
		return a, errA
	}
	b, errB := tlp.Read(inner)
	var unknown *tlp.UnknownLabelError
	switch {
	case errors.As(errA, &unknown):
		return 0, errA
	case errors.As(errB, &unknown):
		return 0, errB
	case errA != nil && errB != nil:
		return 0, errA
	}
	return tlp.Max(a, b), nil
}

// copyPlan says who receives what.
type copyPlan struct {
	plain, encrypted []store.Member
	// excluded received nothing: no valid key for a post that may only
	// travel encrypted.
	excluded   []store.Member
	tellAuthor bool // the author is told who was excluded (TLP:RED)
	tellOwners bool // the owners are (encryption "required")
}

// keyUsable reports whether a member's key can be encrypted to at now.
func keyUsable(m *store.Member, now time.Time) bool {
	return len(m.Key) > 0 && (m.KeyExpires.IsZero() || now.Before(m.KeyExpires))
}

// planCopies applies the list's encryption policy and the TLP rules:
// TLP:RED only ever travels encrypted, whatever the policy.
func planCopies(l *store.List, members []store.Member, label tlp.Label, now time.Time) (copyPlan, *reply.Refusal) {
	var p copyPlan
	var keyless []string
	for _, m := range members {
		if !keyUsable(&m, now) {
			keyless = append(keyless, m.Email)
		}
	}
	strict := label == tlp.Red || label == tlp.AmberStrict
	if strict && l.StrictAllOrNothing && len(keyless) > 0 {
		return p, reply.New(reply.NotAllKeys, "%s delivers %s to all members encrypted or to none, and these members have no valid OpenPGP key: %s; nothing was sent: ask them to register a key with the secretary, or share it another way",
			fmtList(l), label.String(), strings.Join(keyless, ", "))
	}
	policy := l.EncryptionPolicy()
	if label == tlp.Red {
		policy = store.EncryptionRequired
		p.tellAuthor = true
	} else if policy == store.EncryptionRequired {
		p.tellOwners = true
	}
	for _, m := range members {
		switch {
		case policy == store.EncryptionOff:
			p.plain = append(p.plain, m)
		case keyUsable(&m, now):
			p.encrypted = append(p.encrypted, m)
		case policy == store.EncryptionRequired:
			p.excluded = append(p.excluded, m)
		default:
			p.plain = append(p.plain, m)
		}
	}
	return p, nil
}

// sealedPost is the encrypted form of a post, ready for the queue: one
// encrypted body for all, one key packet per member.
type sealedPost struct {
	frame      *store.Frame
	body       []byte // the shared SEIPD packet
	keyPackets map[string][]byte
	recipients []store.Member
	unusable   []store.Member // keys that turned out unusable
}

func (c *Core) seal(pc *postCopy, plan copyPlan, now time.Time) (*sealedPost, error) {
	key := pc.listKey
	if key == nil {
		return nil, errors.New("the list has no usable OpenPGP key")
	}
	inner, err := pc.inner()
	if err != nil {
		return nil, err
	}
	size := 0
	readers := make([]io.Reader, len(inner))
	for i, p := range inner {
		readers[i] = bytes.NewReader(p)
		size += len(p)
	}
	var body bytes.Buffer
	body.Grow(size + size/8 + 1024)
	sk, err := pgp.Seal(&body, io.MultiReader(readers...), key, now)
	if err != nil {
		return nil, err
	}
	defer sk.Wipe()
	sp := &sealedPost{frame: pc.frame(), body: body.Bytes(), keyPackets: map[string][]byte{}}
	for _, m := range plan.encrypted {
		pub, err := pgp.ParsePublicKey(m.Key)
		var kp []byte
		if err == nil {
			kp, err = sk.KeyPacket(pub, now)
		}
		if err != nil {
			c.logger().Warn("member key unusable; no copy", "member", m.Email, "err", err)
			sp.unusable = append(sp.unusable, m)
			continue
		}
		sp.keyPackets[m.Email] = kp
		sp.recipients = append(sp.recipients, m)
	}
	return sp, nil
}

// excludedNotice tells the author of a TLP:RED post who could not receive
// it. It names members, never the post's subject or content.
func (c *Core) excludedNotice(l *store.List, s *store.ListSecrets, m *store.Member, label tlp.Label, msgID string, excluded []store.Member, now time.Time) ([]byte, error) {
	var names []string
	for _, x := range excluded {
		names = append(names, fmt.Sprintf("  %s (%s, %s)", x.Name, x.Email, x.Org))
	}
	text := fmt.Sprintf(`Dear %s,

Your %s message <%s> to %s went out encrypted. %s is shared only
encrypted, and these members have no valid OpenPGP key on record, so they
did NOT receive it:

%s

Share it with them another way (in person: "Rondje Rood"), and ask them to
give the secretary a current OpenPGP key.

-- 
isaclist at %s
`, m.Name, label.String(), msgID, fmtList(l), label.String(), strings.Join(names, "\n"), c.Hostname)
	n := &notice{
		outgoing:  outgoing{list: l, secrets: s, hostname: c.Hostname, now: now, id: NewID(now), listKey: c.listKey(l, s)},
		to:        []string{m.Email},
		toName:    m.Name,
		subject:   fmt.Sprintf("[%s] %d member(s) did not receive your %s message", fmtList(l), len(excluded), label.String()),
		text:      text,
		inReplyTo: msgID,
	}
	return n.build()
}

func ownersExcludedText(l *store.List, excluded []store.Member, msgID string, label tlp.Label, host string) string {
	var names []string
	for _, x := range excluded {
		names = append(names, fmt.Sprintf("  %s (%s, %s)", x.Name, x.Email, x.Org))
	}
	return fmt.Sprintf(`%s sends copies only encrypted (encryption policy "required").
These members have no valid OpenPGP key on record and did not receive
message <%s> (%s):

%s

Register a current key for them: isaclist member key EMAIL FILE

-- 
isaclist at %s
`, fmtList(l), msgID, label.String(), strings.Join(names, "\n"), host)
}
