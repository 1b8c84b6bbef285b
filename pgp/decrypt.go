package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Bounds on what Decrypt and VerifyDetached process. Every loop over
// packets or keys is bounded by one of these, so no message can make the
// list do unbounded work (a message with thousands of key packets would
// otherwise cost a public-key operation each).
const (
	maxOuterPackets = 1000           // key packets + the encrypted packet
	maxKeyAttempts  = MaxKeyAttempts // per message (see MaxKeyAttempts)
	maxInnerPackets = 64             // inside the encryption (and inside compression)
	maxSignatures   = 16             // signature packets examined
	// decompressSlack is what decompressed data may hold beyond the
	// plaintext limit: packet headers, one-pass signatures, signatures.
	decompressSlack = 1 << 20
	// MaxCompressionRatio bounds how far a compressed packet may expand:
	// text compresses three to ten times, logs perhaps fifty; a packet
	// that expands further is a compression bomb (60 MB of zeros fit in
	// 60 KB) and is refused before it costs memory. Small packets may
	// always expand to compressionFloor.
	MaxCompressionRatio = 100
	compressionFloor    = 1 << 20
	// maxClockSkew is how far in the future a signature may be dated.
	maxClockSkew = 15 * time.Minute
)

// MaxKeyAttempts bounds the session-key decryptions tried with the list
// key (a key packet naming it, or a hidden recipient's): each costs a
// private-key operation. Decrypt allows this many per message;
// DecryptWithin shares them among the messages of one post.
const MaxKeyAttempts = 32

// ErrTooManyKeyAttempts reports a message (or a post's messages together)
// with more key packets to try with the list key than MaxKeyAttempts.
var ErrTooManyKeyAttempts = fmt.Errorf("pgp: the message has more than %d key packets for the list's key or for hidden recipients; "+
	"encrypt to the list's key once", MaxKeyAttempts)

// Decrypted is a member's encrypted post, decrypted.
type Decrypted struct {
	Plaintext      []byte // the literal data: for PGP/MIME, the MIME entity
	Binary         bool   // literal data format 'b' (not 't' or 'u')
	Signed         bool   // a signature (or a one-pass signature announcing one) was present
	SignerKeyID    string // 16 hex digits: the key ID the (first, or verified) signature names
	SignatureOK    bool   // a signature verified against the author key given
	SignatureError string // why not: for the member and the log; never any content
	// Signature holds the signature packets exactly as found (binary,
	// concatenated). Inside an encrypted message a signature covers the
	// literal data only, so these packets, armored as "PGP SIGNATURE", are
	// a valid detached signature over Plaintext: a PGP/MIME
	// encrypted+signed post can be re-emitted as multipart/signed with
	// Plaintext as the signed part and recipients verify the author's own
	// signature.
	Signature []byte
	// ArmorCharset is the armor's "Charset" header (RFC 4880 §6.2), lower
	// case: the charset of the plaintext, when the sender said.
	ArmorCharset string
}

// ErrTooLarge reports plaintext over the limit given to Decrypt.
type ErrTooLarge struct{ Limit int64 }

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("pgp: the decrypted message is larger than the limit of %d bytes", e.Limit)
}

// ErrCompressionBomb reports a compressed packet that expands more than
// MaxCompressionRatio times.
var ErrCompressionBomb = fmt.Errorf("pgp: the message's compressed data expands more than %d times; "+
	"such compression bombs are refused (send it uncompressed)", MaxCompressionRatio)

// ErrNotForList reports a message that is encrypted, but not to the list's
// key. KeyIDs are the recipient key IDs named in the message, so the member
// can see which key they encrypted to ("0000000000000000" is a hidden
// recipient).
type ErrNotForList struct{ KeyIDs []string }

// maxNamedKeyIDs bounds the key IDs an error names: a message may carry
// thousands of key packets, and the error may reach a log or a reply.
const maxNamedKeyIDs = 5

// Error names the key IDs the message was encrypted to (the first few),
// and what to do.
func (e *ErrNotForList) Error() string {
	if len(e.KeyIDs) == 0 {
		return "pgp: the message is not encrypted to the list's key"
	}
	ids := e.KeyIDs
	more := ""
	if len(ids) > maxNamedKeyIDs {
		ids, more = ids[:maxNamedKeyIDs], fmt.Sprintf(" and %d more", len(ids)-maxNamedKeyIDs)
	}
	return "pgp: the message is encrypted to key " + strings.Join(ids, ", ") + more +
		", not to the list's key; encrypt to the list's key (see the Autocrypt header of list mail)"
}

// errUndecryptable is the one error for every failure after a key packet
// addressed to the list's key: a wrong session key, a damaged PKESK and a
// failed integrity check all read the same. Telling them apart would give
// anyone who can mail the list a decryption oracle against an RSA list key
// (Bleichenbacher); the member learns enough: the message was damaged.
var errUndecryptable = errors.New("pgp: the message is addressed to the list's key but cannot be decrypted: " +
	"it was damaged or altered in transit (integrity check failed)")

// Decrypt decrypts an armored or binary OpenPGP message addressed to the
// list's key, in memory, and verifies any signature in it against author
// (nil if the sender has no key on record: then Signed may be true with
// SignatureOK false and SignatureError "no key on record").
//
// It refuses, with an error that says why: data that is not an encrypted
// OpenPGP message, a message not encrypted to the list (*ErrNotForList),
// truncated data, encryption without integrity protection (SED packets
// without MDC, which allow undetected tampering), a failed integrity check,
// and plaintext over maxPlaintext bytes. It never panics: a panic deep in
// the OpenPGP library is turned into an error.
func Decrypt(data []byte, list *ListKey, author *PublicKey, now time.Time, maxPlaintext int64) (d *Decrypted, err error) {
	return DecryptWithin(data, list, author, now, maxPlaintext, nil)
}

// DecryptWithin is Decrypt, taking each session-key decryption it tries
// from *attempts (nil: MaxKeyAttempts of its own): the messages of one
// post share MaxKeyAttempts. With none left it returns
// ErrTooManyKeyAttempts.
func DecryptWithin(data []byte, list *ListKey, author *PublicKey, now time.Time, maxPlaintext int64, attempts *int) (d *Decrypted, err error) {
	defer recoverAs(&err, "pgp: malformed OpenPGP message")
	if attempts == nil {
		n := MaxKeyAttempts
		attempts = &n
	}
	d, err = decrypt(data, list, author, now, maxPlaintext, attempts)
	return d, err
}

func decrypt(data []byte, list *ListKey, author *PublicKey, now time.Time, maxPlaintext int64, attempts *int) (*Decrypted, error) {
	if list == nil {
		return nil, errors.New("pgp: no list key")
	}
	if maxPlaintext <= 0 {
		return nil, errors.New("pgp: no plaintext size limit given")
	}
	bin, armorHeader, err := dearmorHeader(data, openpgp.MessageType)
	if err != nil {
		return nil, err
	}
	outer, err := splitPackets(bin, maxOuterPackets)
	if err != nil {
		if errors.Is(err, errTruncated) {
			return nil, errors.New("pgp: the encrypted message is truncated")
		}
		return nil, fmt.Errorf("pgp: not an OpenPGP message: %v", err)
	}

	var eks []*packet.EncryptedKey
	var ids []string
	skesks := 0
	var encrypted []byte
	for i, p := range outer {
		raw := bin[p.start:p.end]
		switch p.tag {
		case tagPKESK:
			pkt, err := packet.Read(bytes.NewReader(raw))
			ek, ok := pkt.(*packet.EncryptedKey)
			if err != nil || !ok {
				// An algorithm go-crypto does not know: still name the
				// recipient (v3 PKESK: version 3, then the key ID).
				if body := packetBody(raw); len(body) >= 9 && body[0] == 3 {
					ids = append(ids, fmt.Sprintf("%016X", body[1:9]))
				}
				continue
			}
			eks = append(eks, ek)
			ids = append(ids, keyIDHex(ek.KeyId))
		case tagSKESK:
			skesks++
		case tagMarker, tagPadding:
		case tagSEIPD, tagAEAD:
			if i != len(outer)-1 {
				return nil, errors.New("pgp: not a valid OpenPGP message: data follows the encrypted packet")
			}
			encrypted = raw
		case tagSED:
			return nil, errors.New("pgp: the message is encrypted without integrity protection (no MDC), " +
				"so tampering could not be detected; it is refused (use current OpenPGP software)")
		case tagLiteral, tagCompressed, tagOPS, tagSignature:
			return nil, errors.New("pgp: the message is not encrypted")
		default:
			return nil, fmt.Errorf("pgp: not an encrypted OpenPGP message (unexpected packet type %d)", p.tag)
		}
	}
	if encrypted == nil {
		if len(ids) > 0 || skesks > 0 {
			return nil, errors.New("pgp: the encrypted message is truncated (no encrypted data after the key packets)")
		}
		return nil, errors.New("pgp: not an encrypted OpenPGP message")
	}

	cfg := &packet.Config{Time: func() time.Time { return now }}
	var inner []byte
	addressed, ok, exhausted := false, false, false
	dks := decryptionKeys(list.entity)
tryKeys:
	for _, ek := range eks {
		for _, k := range dks {
			if ek.KeyId != 0 && ek.KeyId != k.PublicKey.KeyId {
				continue
			}
			if ek.KeyId != 0 {
				addressed = true
			}
			if ek.Algo != k.PublicKey.PubKeyAlgo {
				continue
			}
			if *attempts <= 0 {
				exhausted = true
				break tryKeys
			}
			*attempts--
			if err := ek.Decrypt(k.PrivateKey, cfg); err != nil {
				continue
			}
			inner, err = decryptData(encrypted, ek.CipherFunc, ek.Key)
			clear(ek.Key)
			if err == nil {
				ok = true
				break tryKeys
			}
		}
	}
	if !ok {
		if exhausted {
			// Counted whatever the attempts' outcome: no oracle.
			return nil, ErrTooManyKeyAttempts
		}
		if addressed {
			return nil, errUndecryptable
		}
		if len(ids) == 0 && skesks > 0 {
			return nil, errors.New("pgp: the message is encrypted with a passphrase, not to the list's key")
		}
		return nil, &ErrNotForList{KeyIDs: ids}
	}

	msg, err := parseInner(inner, maxPlaintext, 0)
	if err != nil {
		return nil, err
	}
	d := &Decrypted{
		Plaintext: msg.literal,
		Binary:    msg.format == 'b',
		Signed:    msg.ops > 0 || len(msg.sigs) > 0,
	}
	for k, v := range armorHeader {
		if strings.EqualFold(k, "Charset") {
			d.ArmorCharset = strings.ToLower(strings.TrimSpace(v))
		}
	}
	if !d.Signed {
		return d, nil
	}
	if len(msg.sigs) == 0 {
		d.SignatureError = "the message announces a signature but carries none"
		return d, nil
	}
	d.Signature = bytes.Join(msg.sigs, nil)
	d.SignatureOK, d.SignerKeyID, d.SignatureError = verifyPackets(d.Plaintext, msg.sigs, author, now)
	return d, nil
}

// recoverAs turns a panic (in go-crypto, on hostile input) into the error
// msg. The panic value may describe the data, so it is not repeated. Only
// the exported entry points recover; the fuzz targets call the inner
// functions so that a panic is still found and fixed.
func recoverAs(err *error, msg string) {
	if r := recover(); r != nil {
		*err = errors.New(msg)
	}
}

// dearmor returns the binary content of armored data of the given block
// type, or data itself if it is binary.
func dearmor(data []byte, blockType string) ([]byte, error) {
	bin, _, err := dearmorHeader(data, blockType)
	return bin, err
}

// dearmorHeader is dearmor, also returning the armor's headers (nil for
// binary data).
func dearmorHeader(data []byte, blockType string) ([]byte, map[string]string, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New("pgp: empty OpenPGP data")
	}
	if !isArmored(data) {
		if data[0]&0x80 == 0 {
			return nil, nil, errors.New("pgp: not OpenPGP data (neither ASCII armor nor binary)")
		}
		return data, nil, nil
	}
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, nil, errors.New("pgp: no readable ASCII-armored OpenPGP block")
	}
	if block.Type != blockType {
		// The type line is the sender's text: named only if it is one
		// of the armor types RFC 4880 §6.2 defines.
		switch block.Type {
		case "PGP MESSAGE", "PGP PUBLIC KEY BLOCK", "PGP PRIVATE KEY BLOCK", "PGP SIGNATURE":
			return nil, nil, fmt.Errorf("pgp: the armored block is a %q, not a %q", block.Type, blockType)
		}
		return nil, nil, fmt.Errorf("pgp: the armored block is not a %q", blockType)
	}
	// base64 only shrinks data: 3/4 of it bounds the result, so one
	// allocation of that size does.
	var buf bytes.Buffer
	buf.Grow(len(data)/4*3 + 3 + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(block.Body, int64(len(data)))); err != nil {
		return nil, nil, errors.New("pgp: damaged ASCII armor (bad base64)")
	}
	bin := buf.Bytes()
	if len(bin) == 0 {
		return nil, nil, errors.New("pgp: the armored block is empty")
	}
	return bin, block.Header, nil
}

// decryptData decrypts one SEIPD (or AEAD) packet with a session key and
// checks its integrity (MDC or AEAD tag) before returning anything: no
// plaintext is used unless the whole packet checked out.
func decryptData(raw []byte, cf packet.CipherFunction, key []byte) ([]byte, error) {
	pkt, err := packet.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, errUndecryptable
	}
	if se, ok := pkt.(*packet.SymmetricallyEncrypted); ok && !se.IntegrityProtected {
		return nil, errUndecryptable
	}
	edp, ok := pkt.(packet.EncryptedDataPacket)
	if !ok {
		return nil, errUndecryptable
	}
	rc, err := edp.Decrypt(cf, key)
	if err != nil {
		return nil, errUndecryptable
	}
	// The plaintext is shorter than the ciphertext packet, so one buffer
	// of that size holds it: no doubling of a growing buffer.
	inner := make([]byte, len(raw))
	n, err := io.ReadFull(rc, inner)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	} else if err == nil {
		err = errors.New("plaintext longer than its ciphertext")
	}
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		clear(inner)
		return nil, errUndecryptable
	}
	return inner[:n], nil
}

// decompress writes at most limit bytes of a compressed packet's content
// to w and returns how many it wrote.
func decompress(compressed []byte, w io.Writer, limit int64) (int64, error) {
	pkt, err := packet.Read(bytes.NewReader(compressed))
	c, ok := pkt.(*packet.Compressed)
	if err != nil || !ok {
		return 0, errors.New("pgp: the decrypted message uses an unknown compression")
	}
	n, err := io.Copy(w, io.LimitReader(c.Body, limit))
	if err != nil {
		return n, errors.New("pgp: the decrypted message is malformed: corrupt compressed data")
	}
	return n, nil
}

// innerMessage is what an encrypted message holds: literal data and the
// signatures over it.
type innerMessage struct {
	literal []byte
	format  byte
	ops     int      // one-pass signature packets
	sigs    [][]byte // signature packets, raw
}

// parseInner reads the decrypted packet sequence: optionally one
// compressed packet wrapping the rest (depth 0 only), then
// [one-pass signatures] literal [signatures], or the old form
// [signatures] literal. Anything else is refused: a message is one
// document, not a container of several.
func parseInner(b []byte, maxPlaintext int64, depth int) (*innerMessage, error) {
	pkts, err := splitPackets(b, maxInnerPackets)
	if err != nil {
		// splitPackets names a byte and its offset: of decrypted data
		// here, so not repeated (nothing decrypted is quoted, anywhere).
		switch {
		case errors.Is(err, errTruncated):
			return nil, errors.New("pgp: the decrypted message is malformed: truncated packet")
		case errors.Is(err, errTooManyPackets):
			return nil, fmt.Errorf("pgp: the decrypted message is malformed: more than %d packets", maxInnerPackets)
		}
		return nil, errors.New("pgp: the decrypted message is malformed: not an OpenPGP packet sequence")
	}
	var real []rawPacket
	for _, p := range pkts {
		if p.tag != tagMarker && p.tag != tagPadding {
			real = append(real, p)
		}
	}
	if len(real) == 1 && real[0].tag == tagCompressed {
		if depth > 0 {
			return nil, errors.New("pgp: the decrypted message is malformed: nested compression")
		}
		// Decompression stops at whichever limit comes first: the
		// plaintext limit, or the ratio a compression bomb exceeds. A
		// first pass only counts (no memory); the second fills a buffer of
		// exactly the size counted, so what a post costs is its plaintext,
		// not the plaintext and a doubling buffer.
		compressed := b[real[0].start:real[0].end]
		limit := maxPlaintext + decompressSlack
		ratioLimit := max(int64(len(compressed))*MaxCompressionRatio, compressionFloor)
		bomb := ratioLimit < limit
		limit = min(limit, ratioLimit)
		n, err := decompress(compressed, io.Discard, limit+1)
		if err != nil {
			return nil, err
		}
		if n > limit {
			if bomb {
				return nil, ErrCompressionBomb
			}
			return nil, &ErrTooLarge{Limit: maxPlaintext}
		}
		buf := bytes.NewBuffer(make([]byte, 0, n))
		if m, err := decompress(compressed, buf, n); err != nil || m != n {
			return nil, errors.New("pgp: the decrypted message is malformed: corrupt compressed data")
		}
		return parseInner(buf.Bytes(), maxPlaintext, depth+1)
	}

	m := &innerMessage{}
	seenLiteral := false
	for _, p := range real {
		raw := b[p.start:p.end]
		switch p.tag {
		case tagOPS:
			if seenLiteral || len(m.sigs) > 0 {
				return nil, errors.New("pgp: the decrypted message is malformed: misplaced one-pass signature")
			}
			m.ops++
		case tagSignature:
			if !seenLiteral && m.ops > 0 {
				return nil, errors.New("pgp: the decrypted message is malformed: misplaced signature")
			}
			if len(m.sigs) >= maxSignatures {
				return nil, fmt.Errorf("pgp: the message carries more than %d signatures", maxSignatures)
			}
			m.sigs = append(m.sigs, raw)
		case tagLiteral:
			if seenLiteral {
				return nil, errors.New("pgp: the decrypted message holds more than one document")
			}
			seenLiteral = true
			pkt, err := packet.Read(bytes.NewReader(raw))
			lit, ok := pkt.(*packet.LiteralData)
			if err != nil || !ok {
				return nil, errors.New("pgp: the decrypted message is malformed: bad literal data packet")
			}
			m.format = lit.Format
			// The literal is shorter than its packet: one buffer of that
			// size holds it.
			buf := bytes.NewBuffer(make([]byte, 0, min(int64(len(raw)), maxPlaintext+1)))
			_, err = buf.ReadFrom(io.LimitReader(lit.Body, maxPlaintext+1))
			m.literal = buf.Bytes()
			if err != nil {
				return nil, errors.New("pgp: the decrypted message is malformed: bad literal data packet")
			}
			if int64(len(m.literal)) > maxPlaintext {
				return nil, &ErrTooLarge{Limit: maxPlaintext}
			}
		case tagCompressed:
			return nil, errors.New("pgp: the decrypted message is malformed: misplaced compressed packet")
		default:
			return nil, errors.New("pgp: the decrypted message is malformed: unexpected packet type")
		}
	}
	if !seenLiteral {
		return nil, errors.New("pgp: the decrypted message holds no document (no literal data)")
	}
	return m, nil
}

// VerifyDetached verifies a detached signature (armored or binary; for a
// PGP/MIME multipart/signed post, the second part) over data (the signed
// MIME part exactly as transmitted, CRLF line endings) against author's
// key at time now. keyID names the key the signature claims (16 hex
// digits); reason says why it did not verify.
func VerifyDetached(data, signature []byte, author *PublicKey, now time.Time) (ok bool, keyID string, reason string) {
	defer func() {
		if r := recover(); r != nil {
			ok, reason = false, "malformed signature"
		}
	}()
	return verifyDetached(data, signature, author, now)
}

func verifyDetached(data, signature []byte, author *PublicKey, now time.Time) (ok bool, keyID string, reason string) {
	bin, err := dearmor(signature, openpgp.SignatureType)
	if err != nil {
		return false, "", strings.TrimPrefix(err.Error(), "pgp: ")
	}
	pkts, err := splitPackets(bin, maxSignatures)
	if err != nil {
		return false, "", "malformed signature: " + err.Error()
	}
	var sigs [][]byte
	for _, p := range pkts {
		switch p.tag {
		case tagSignature:
			sigs = append(sigs, bin[p.start:p.end])
		case tagMarker, tagPadding:
		default:
			return false, "", "not a detached signature"
		}
	}
	if len(sigs) == 0 {
		return false, "", "no signature found"
	}
	return verifyPackets(data, sigs, author, now)
}

// verifyPackets checks signature packets over data; one good signature by
// the author is enough. Otherwise it reports the first signature's key ID
// and why it failed.
func verifyPackets(data []byte, sigs [][]byte, author *PublicKey, now time.Time) (ok bool, keyID, reason string) {
	for i, raw := range sigs {
		id, why := verifyOne(data, raw, author, now)
		if why == "" {
			return true, id, ""
		}
		if i == 0 {
			keyID, reason = id, why
		}
	}
	return false, keyID, reason
}

// verifyOne checks one signature packet over data and returns the key ID it
// names and, if it is not good, why.
func verifyOne(data, raw []byte, author *PublicKey, now time.Time) (keyID, reason string) {
	pkt, err := packet.Read(bytes.NewReader(raw))
	sig, ok := pkt.(*packet.Signature)
	if err != nil || !ok {
		return "", "unreadable or unsupported signature"
	}
	keyID = sigIssuer(sig)
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return keyID, "not a signature over a document"
	}
	if author == nil {
		return keyID, "no key on record"
	}
	// A sender's clock a little ahead of ours makes the signature (and a
	// freshly made key) look as if from the future, which go-crypto
	// reports as expired. Within maxClockSkew, judge at the signature's
	// own time instead.
	at := now
	if d := sig.CreationTime.Sub(now); d > 0 && d <= maxClockSkew {
		at = sig.CreationTime
	}
	cfg := &packet.Config{Time: func() time.Time { return at }}
	_, _, err = openpgp.VerifyDetachedSignature(openpgp.EntityList{author.entity}, bytes.NewReader(data), bytes.NewReader(raw), cfg)
	switch {
	case err == nil:
		return keyID, ""
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return keyID, fmt.Sprintf("signed by key %s, which is not the sender's registered key %s", keyID, author.fpr)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return keyID, "the sender's key has expired"
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return keyID, "the sender's key is revoked"
	case errors.Is(err, pgperrors.ErrSignatureExpired) && sig.CreationTime.After(at):
		return keyID, "the signature is dated in the future (is the sender's clock wrong?)"
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return keyID, "the signature has expired"
	}
	var se pgperrors.SignatureError
	if errors.As(err, &se) {
		return keyID, "bad signature: the signed content does not match"
	}
	// go-crypto's other errors are not repeated: they may describe the
	// data (this reason goes into the copies and the refusal).
	var unsupported pgperrors.UnsupportedError
	if errors.As(err, &unsupported) {
		return keyID, "the signature uses an algorithm the list does not support"
	}
	return keyID, "the signature cannot be verified"
}

// sigIssuer is the key ID a signature names: the issuer subpacket, or else
// derived from the issuer fingerprint.
func sigIssuer(sig *packet.Signature) string {
	if sig.IssuerKeyId != nil {
		return keyIDHex(*sig.IssuerKeyId)
	}
	if f := sig.IssuerFingerprint; len(f) == 20 {
		return fmt.Sprintf("%016X", f[12:])
	} else if len(f) == 32 {
		return fmt.Sprintf("%016X", f[:8])
	}
	return ""
}

// MicAlg returns the micalg parameter (RFC 3156 §5) for re-emitting
// signature packets (binary, as in Decrypted.Signature) as the detached
// signature of a multipart/signed entity, e.g. "pgp-sha256"; several
// signatures with different hashes give a comma-separated list (RFC 1847).
func MicAlg(signature []byte) (string, error) {
	pkts, err := splitPackets(signature, maxSignatures)
	if err != nil || len(pkts) == 0 {
		return "", errors.New("pgp: no signature packets")
	}
	var names []string
	for _, p := range pkts {
		pkt, err := packet.Read(bytes.NewReader(signature[p.start:p.end]))
		sig, ok := pkt.(*packet.Signature)
		if err != nil || !ok {
			return "", errors.New("pgp: unreadable signature packet")
		}
		name, ok := micAlgName(sig.Hash)
		if !ok {
			return "", fmt.Errorf("pgp: signature hash %v has no micalg name", sig.Hash)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, ","), nil
}

// micAlgName is the RFC 3156 / RFC 4880 §9.4 name of a hash, lower-cased.
func micAlgName(h crypto.Hash) (string, bool) {
	switch h {
	case crypto.SHA1:
		return "pgp-sha1", true
	case crypto.SHA224:
		return "pgp-sha224", true
	case crypto.SHA256:
		return "pgp-sha256", true
	case crypto.SHA384:
		return "pgp-sha384", true
	case crypto.SHA512:
		return "pgp-sha512", true
	case crypto.SHA3_256:
		return "pgp-sha3-256", true
	case crypto.SHA3_512:
		return "pgp-sha3-512", true
	}
	return "", false
}
