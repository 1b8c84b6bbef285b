package smime

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

const (
	// maxRecipients bounds the RecipientInfos examined.
	maxRecipients = 256
	// MaxCMSInput bounds the DER/BER a post's CMS may have (the SMTP size
	// limit bounds it before that; this keeps the package safe alone).
	MaxCMSInput = 64 << 20
)

// Decrypted is a member's post, decrypted.
type Decrypted struct {
	// Content is the decrypted MIME entity (for a signed-and-encrypted
	// post, the multipart/signed or pkcs7-mime signed-data inside).
	Content []byte
	// Authenticated is true for AuthEnvelopedData (AES-GCM): the
	// ciphertext was integrity-checked. EnvelopedData (CBC) is not.
	Authenticated bool
	// Cipher names the content encryption ("AES-256-CBC", "AES-128-GCM"),
	// KeyTransport how the key reached the list ("RSA PKCS#1 v1.5",
	// "RSAES-OAEP SHA-256", "ECDH P-256 SHA-256 KDF, AES-256 wrap"): for
	// the log.
	Cipher, KeyTransport string
}

// ErrNotForList reports a post encrypted, but not to the list's
// certificate. Recipients describes the certificates it was encrypted to
// (issuer and serial, or subject key identifier), so the member can see
// which certificate they used.
type ErrNotForList struct{ Recipients []string }

// maxNamedRecipients bounds the recipients an error names: a message may
// carry many RecipientInfos, and the error may reach a log or a reply.
const maxNamedRecipients = 3

// Error says what the message was encrypted to (the first few) and what
// to do.
func (e *ErrNotForList) Error() string {
	what := "no recipient the list can identify"
	if n := len(e.Recipients); n > maxNamedRecipients {
		what = strings.Join(e.Recipients[:maxNamedRecipients], "; ") + fmt.Sprintf("; and %d more", n-maxNamedRecipients)
	} else if n > 0 {
		what = strings.Join(e.Recipients, "; ")
	}
	return "smime: the message was not encrypted to the list's certificate (it is encrypted to " + what +
		"); encrypt to the list's S/MIME certificate (sign a message from the list into your address book, or ask the secretary for it)"
}

// errUndecryptable is the one error for every failure once a RecipientInfo
// names the list's certificate: a wrong key, bad PKCS #1 padding, bad CBC
// padding and a failed GCM tag all read the same, so that nobody who can
// mail the list can use it as a padding oracle (Bleichenbacher against the
// RSA key; Vaudenay against CBC).
var errUndecryptable = errors.New("smime: the message is encrypted to the list's certificate but cannot be decrypted: " +
	"it was damaged or altered in transit")

// ErrMalformed is wrapped by every error about CMS that cannot be parsed.
var ErrMalformed = errors.New("smime: malformed S/MIME (CMS) data")

// ErrTooLarge is wrapped when the decrypted content would exceed the limit.
var ErrTooLarge = errors.New("smime: the decrypted message is larger than the list accepts")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Decrypt decrypts a CMS ContentInfo (DER or BER, binary) holding an
// EnvelopedData (RFC 5652 §6) or an AuthEnvelopedData (RFC 5083) addressed
// to the list's certificate, in memory. It reads RSA key transport with
// PKCS #1 v1.5 or RSAES-OAEP (SHA-1/224/256/384/512), ECDH key agreement
// (dhSinglePass-stdDH with the SHA-1/224/256/384/512 KDF, AES key wrap) when
// the list's key is ECDSA, AES-128/192/256-CBC and AES-128/192/256-GCM.
//
// Content larger than maxPlaintext is refused before anything is
// decrypted (ErrTooLarge). A message not encrypted to the list is an
// *ErrNotForList; any failure after a RecipientInfo for the list was found
// reads the same (see errUndecryptable). Errors never quote decrypted
// content, and malformed input is an error, never a panic.
func Decrypt(data []byte, id *Identity, maxPlaintext int) (d *Decrypted, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME (CMS) data")
	return decrypt(data, id, maxPlaintext)
}

// decrypt is Decrypt without the recover (the fuzz target calls it, so
// that a panic is found rather than hidden).
func decrypt(data []byte, id *Identity, maxPlaintext int) (*Decrypted, error) {
	if id == nil || id.Key == nil || id.Cert == nil {
		return nil, errors.New("smime: no list identity")
	}
	if maxPlaintext <= 0 {
		return nil, errors.New("smime: no plaintext size limit given")
	}
	if len(data) > MaxCMSInput {
		return nil, ErrTooLarge
	}
	der, err := berToDER(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ctype, content, err := parseContentInfo(der)
	if err != nil {
		return nil, err
	}
	switch {
	case ctype.Equal(oidEnvelopedData):
		return decryptEnveloped(content, id, maxPlaintext, false)
	case ctype.Equal(oidAuthEnvelopedData):
		return decryptEnveloped(content, id, maxPlaintext, true)
	case ctype.Equal(oidSignedData):
		return nil, errors.New("smime: the message is signed, not encrypted")
	}
	return nil, malformed("content type %v is not enveloped or auth-enveloped data", ctype)
}

// parseContentInfo reads ContentInfo (RFC 5652 §3) and returns the content
// type and the content inside the [0] EXPLICIT.
func parseContentInfo(der []byte) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	s := cryptobyte.String(der)
	var ci, content cryptobyte.String
	var ctype asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !s.Empty() ||
		!ci.ReadASN1ObjectIdentifier(&ctype) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.Empty() {
		return nil, nil, malformed("not a CMS ContentInfo")
	}
	return ctype, content, nil
}

// encryptedContentInfo is EncryptedContentInfo (RFC 5652 §6.1).
type encryptedContentInfo struct {
	contentType asn1.ObjectIdentifier
	alg         asn1.ObjectIdentifier
	params      cryptobyte.String // the algorithm's parameters, a whole element (or empty)
	ciphertext  []byte
}

func parseEncryptedContentInfo(s *cryptobyte.String, maxPlaintext int) (*encryptedContentInfo, error) {
	var eci, algID cryptobyte.String
	e := &encryptedContentInfo{}
	if !s.ReadASN1(&eci, cbasn1.SEQUENCE) ||
		!eci.ReadASN1ObjectIdentifier(&e.contentType) ||
		!eci.ReadASN1(&algID, cbasn1.SEQUENCE) ||
		!algID.ReadASN1ObjectIdentifier(&e.alg) {
		return nil, malformed("bad EncryptedContentInfo")
	}
	if !algID.Empty() && !algID.ReadAnyASN1Element(&e.params, new(cbasn1.Tag)) {
		return nil, malformed("bad content-encryption parameters")
	}
	// encryptedContent [0] IMPLICIT OCTET STRING: primitive, or (BER, after
	// conversion) constructed holding OCTET STRING chunks.
	var enc cryptobyte.String
	var tag cbasn1.Tag
	if eci.Empty() {
		return nil, malformed("the encrypted content is missing (detached encryption is not supported)")
	}
	if !eci.ReadAnyASN1(&enc, &tag) {
		return nil, malformed("bad encrypted content")
	}
	switch tag {
	case cbasn1.Tag(0).ContextSpecific():
		if len(enc) > maxPlaintext+aes.BlockSize {
			return nil, ErrTooLarge
		}
		e.ciphertext = enc
	case cbasn1.Tag(0).Constructed().ContextSpecific():
		var total int
		for chunks := enc; !chunks.Empty(); {
			var c cryptobyte.String
			if !chunks.ReadASN1(&c, cbasn1.OCTET_STRING) {
				return nil, malformed("bad encrypted content chunk")
			}
			total += len(c)
		}
		if total > maxPlaintext+aes.BlockSize {
			return nil, ErrTooLarge
		}
		e.ciphertext = make([]byte, 0, total)
		for chunks := enc; !chunks.Empty(); {
			var c cryptobyte.String
			chunks.ReadASN1(&c, cbasn1.OCTET_STRING)
			e.ciphertext = append(e.ciphertext, c...)
		}
	default:
		return nil, malformed("bad encrypted content tag")
	}
	return e, nil
}

// contentCipher describes a content-encryption algorithm.
type contentCipher struct {
	name   string
	keyLen int
	gcm    bool
}

func lookupContentCipher(oid asn1.ObjectIdentifier) (contentCipher, bool) {
	switch {
	case oid.Equal(oidAES128CBC):
		return contentCipher{"AES-128-CBC", 16, false}, true
	case oid.Equal(oidAES192CBC):
		return contentCipher{"AES-192-CBC", 24, false}, true
	case oid.Equal(oidAES256CBC):
		return contentCipher{"AES-256-CBC", 32, false}, true
	case oid.Equal(oidAES128GCM):
		return contentCipher{"AES-128-GCM", 16, true}, true
	case oid.Equal(oidAES192GCM):
		return contentCipher{"AES-192-GCM", 24, true}, true
	case oid.Equal(oidAES256GCM):
		return contentCipher{"AES-256-GCM", 32, true}, true
	}
	return contentCipher{}, false
}

// decryptEnveloped handles EnvelopedData and (auth) AuthEnvelopedData.
func decryptEnveloped(s cryptobyte.String, id *Identity, maxPlaintext int, auth bool) (*Decrypted, error) {
	var ed cryptobyte.String
	var version int
	if !s.ReadASN1(&ed, cbasn1.SEQUENCE) || !s.Empty() || !ed.ReadASN1Integer(&version) {
		return nil, malformed("bad EnvelopedData")
	}
	// originatorInfo [0] IMPLICIT: certificates and CRLs the list does not need.
	if !ed.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed("bad originatorInfo")
	}
	var ris cryptobyte.String
	if !ed.ReadASN1(&ris, cbasn1.SET) {
		return nil, malformed("bad RecipientInfos")
	}
	eci, err := parseEncryptedContentInfo(&ed, maxPlaintext)
	if err != nil {
		return nil, err
	}
	cc, ok := lookupContentCipher(eci.alg)
	if !ok {
		return nil, fmt.Errorf("smime: the message is encrypted with %v, which the list does not read; use AES (CBC or GCM)", eci.alg)
	}
	if cc.gcm != auth {
		return nil, malformed("%s in the wrong kind of envelope", cc.name)
	}
	var authAttrs, mac []byte
	if auth {
		// authAttrs [1] IMPLICIT; the MAC covers their DER with the SET OF
		// tag (RFC 5083 §2.2).
		var aa cryptobyte.String
		var has bool
		if !ed.ReadOptionalASN1(&aa, &has, cbasn1.Tag(1).Constructed().ContextSpecific()) {
			return nil, malformed("bad authAttrs")
		}
		if has {
			b := cryptobyte.NewBuilder(nil)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(aa) })
			authAttrs, err = b.Bytes()
			if err != nil {
				return nil, malformed("bad authAttrs")
			}
		}
		if !ed.ReadASN1Bytes(&mac, cbasn1.OCTET_STRING) {
			return nil, malformed("the message authentication code is missing")
		}
	}

	// Find the RecipientInfo for the list's certificate.
	var others []string
	var key []byte
	var transport string
	found := false
	for n := 0; !ris.Empty(); n++ {
		if n >= maxRecipients {
			return nil, malformed("more than %d recipients", maxRecipients)
		}
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !ris.ReadAnyASN1Element(&ri, &tag) {
			return nil, malformed("bad RecipientInfo")
		}
		var match bool
		var desc []string
		switch tag {
		case cbasn1.SEQUENCE:
			match, desc, key, transport, err = openKTRI(ri, id, cc.keyLen)
		case cbasn1.Tag(1).Constructed().ContextSpecific():
			match, desc, key, transport, err = openKARI(ri, id, cc.keyLen)
		default:
			// kekri, pwri, ori: not for a certificate.
			desc = []string{"a recipient without a certificate (password or shared key)"}
		}
		if err != nil {
			return nil, err
		}
		if match {
			found = true
			break
		}
		others = append(others, desc...)
	}
	if !found {
		return nil, &ErrNotForList{Recipients: others}
	}
	defer clear(key)

	var plain []byte
	if auth {
		plain, err = openGCM(key, eci, authAttrs, mac)
	} else {
		plain, err = openCBC(key, eci)
	}
	if err != nil {
		return nil, err
	}
	if len(plain) > maxPlaintext {
		clear(plain)
		return nil, ErrTooLarge
	}
	return &Decrypted{Content: plain, Authenticated: auth, Cipher: cc.name, KeyTransport: transport}, nil
}

// ridMatches reports whether a recipient identifier names cert:
// IssuerAndSerialNumber (a SEQUENCE) or, with skiTag, a subject key
// identifier. It also describes the identifier for ErrNotForList.
func ridMatches(rid cryptobyte.String, tag cbasn1.Tag, skiTag cbasn1.Tag, cert *x509.Certificate) (bool, string, error) {
	switch tag {
	case cbasn1.SEQUENCE:
		var ias cryptobyte.String
		var issuer cryptobyte.String
		serial := new(big.Int)
		if !rid.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !ias.ReadASN1Integer(serial) {
			return false, "", malformed("bad IssuerAndSerialNumber")
		}
		if bytes.Equal(issuer, cert.RawIssuer) && serial.Cmp(cert.SerialNumber) == 0 {
			return true, "", nil
		}
		return false, describeIssuerSerial(issuer, serial), nil
	case skiTag:
		var ski []byte
		if skiTag&0x20 != 0 {
			// kari: rKeyId [0] IMPLICIT RecipientKeyIdentifier
			// { subjectKeyIdentifier, date OPTIONAL, other OPTIONAL }.
			var rki cryptobyte.String
			if !rid.ReadASN1(&rki, skiTag) || !rki.ReadASN1Bytes(&ski, cbasn1.OCTET_STRING) {
				return false, "", malformed("bad recipient key identifier")
			}
		} else if !rid.ReadASN1Bytes(&ski, skiTag) {
			// ktri: [0] IMPLICIT SubjectKeyIdentifier.
			return false, "", malformed("bad subject key identifier")
		}
		if len(cert.SubjectKeyId) > 0 && bytes.Equal(ski, cert.SubjectKeyId) {
			return true, "", nil
		}
		return false, "the certificate with subject key identifier " + hex.EncodeToString(ski), nil
	}
	return false, "", malformed("bad recipient identifier")
}

func describeIssuerSerial(issuer []byte, serial *big.Int) string {
	name := "an unreadable issuer"
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(issuer, &rdn); err == nil && len(rest) == 0 {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		name = "issuer " + n.String()
	}
	return printable(fmt.Sprintf("the certificate of %s, serial %x", name, serial))
}

// openKTRI reads a KeyTransRecipientInfo (RFC 5652 §6.2.1) and, if it names
// the list's certificate, decrypts the content key.
func openKTRI(ri cryptobyte.String, id *Identity, keyLen int) (bool, []string, []byte, string, error) {
	var k cryptobyte.String
	var version int
	if !ri.ReadASN1(&k, cbasn1.SEQUENCE) || !k.ReadASN1Integer(&version) {
		return false, nil, nil, "", malformed("bad KeyTransRecipientInfo")
	}
	var rid cryptobyte.String
	var tag cbasn1.Tag
	if !k.ReadAnyASN1Element(&rid, &tag) {
		return false, nil, nil, "", malformed("bad KeyTransRecipientInfo")
	}
	match, desc, err := ridMatches(rid, tag, cbasn1.Tag(0).ContextSpecific(), id.Cert)
	if err != nil || !match {
		return false, []string{desc}, nil, "", err
	}
	var algID cryptobyte.String
	var alg asn1.ObjectIdentifier
	var ek []byte
	if !k.ReadASN1(&algID, cbasn1.SEQUENCE) || !algID.ReadASN1ObjectIdentifier(&alg) || !k.ReadASN1Bytes(&ek, cbasn1.OCTET_STRING) {
		return false, nil, nil, "", malformed("bad KeyTransRecipientInfo")
	}
	priv, ok := id.Key.(*rsa.PrivateKey)
	if !ok {
		return false, nil, nil, "", errors.New("smime: the message uses RSA key transport, but the list's key is not RSA")
	}
	switch {
	case alg.Equal(oidRSAEncryption):
		// A random key, replaced only if the padding is valid, in constant
		// time (RFC 3218 §2.3.2): a bad padding then fails later exactly
		// like a wrong key.
		key := make([]byte, keyLen)
		rand.Read(key)
		//lint:ignore SA1019 members' clients send PKCS #1 v1.5; this is the oracle-free way to read it.
		if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, ek, key); err != nil {
			return true, nil, nil, "", errUndecryptable
		}
		return true, nil, key, "RSA PKCS#1 v1.5", nil
	case alg.Equal(oidRSAESOAEP):
		opts, name, err := oaepOptions(algID)
		if err != nil {
			return true, nil, nil, "", err
		}
		key, err := priv.Decrypt(nil, ek, opts)
		if err != nil || len(key) != keyLen {
			clear(key)
			return true, nil, nil, "", errUndecryptable
		}
		return true, nil, key, name, nil
	}
	return true, nil, nil, "", fmt.Errorf("smime: the message's key is encrypted with %v, which the list does not read; use RSA PKCS #1 v1.5 or OAEP", alg)
}

func hashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidSHA224):
		return crypto.SHA224, true
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

// oaepOptions reads RSAES-OAEP-params (RFC 8017 A.2.1): hashAlgorithm [0]
// (default SHA-1), maskGenAlgorithm [1] (default MGF1 with SHA-1),
// pSourceAlgorithm [2] (default an empty label).
func oaepOptions(params cryptobyte.String) (*rsa.OAEPOptions, string, error) {
	opts := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	bad := malformed("bad RSAES-OAEP parameters")
	if !params.Empty() {
		var seq cryptobyte.String
		var tag cbasn1.Tag
		if !params.ReadAnyASN1(&seq, &tag) {
			return nil, "", bad
		}
		if tag == cbasn1.SEQUENCE {
			readHash := func(s cryptobyte.String) (crypto.Hash, cryptobyte.String, bool) {
				var a cryptobyte.String
				var oid asn1.ObjectIdentifier
				if !s.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) {
					return 0, nil, false
				}
				h, ok := hashByOID(oid)
				if oid.Equal(oidMGF1) {
					return 0, a, true
				}
				return h, a, ok
			}
			var f cryptobyte.String
			var has bool
			if !seq.ReadOptionalASN1(&f, &has, cbasn1.Tag(0).Constructed().ContextSpecific()) {
				return nil, "", bad
			}
			if has {
				h, _, ok := readHash(f)
				if !ok {
					return nil, "", errors.New("smime: RSAES-OAEP with a hash the list does not read")
				}
				opts.Hash = h
			}
			if !seq.ReadOptionalASN1(&f, &has, cbasn1.Tag(1).Constructed().ContextSpecific()) {
				return nil, "", bad
			}
			if has {
				_, rest, ok := readHash(f)
				if !ok || rest == nil {
					return nil, "", errors.New("smime: RSAES-OAEP with a mask generation function other than MGF1")
				}
				h, _, ok := readHash(rest)
				if !ok {
					return nil, "", errors.New("smime: RSAES-OAEP MGF1 with a hash the list does not read")
				}
				opts.MGFHash = h
			}
			if !seq.ReadOptionalASN1(&f, &has, cbasn1.Tag(2).Constructed().ContextSpecific()) {
				return nil, "", bad
			}
			if has {
				var a cryptobyte.String
				var oid asn1.ObjectIdentifier
				var label []byte
				if !f.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidPSpecified) || !a.ReadASN1Bytes(&label, cbasn1.OCTET_STRING) {
					return nil, "", bad
				}
				opts.Label = label
			}
		} else if tag != cbasn1.NULL {
			return nil, "", bad
		}
	}
	return opts, "RSAES-OAEP " + opts.Hash.String(), nil
}

// openKARI reads a KeyAgreeRecipientInfo (RFC 5652 §6.2.2, RFC 5753 §3.1)
// and, if one of its RecipientEncryptedKeys names the list's certificate,
// derives the key-encryption key and unwraps the content key.
func openKARI(ri cryptobyte.String, id *Identity, keyLen int) (bool, []string, []byte, string, error) {
	var k, orig cryptobyte.String
	var version int
	bad := malformed("bad KeyAgreeRecipientInfo")
	if !ri.ReadASN1(&k, cbasn1.Tag(1).Constructed().ContextSpecific()) || !k.ReadASN1Integer(&version) ||
		!k.ReadASN1(&orig, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return false, nil, nil, "", bad
	}
	var ukm []byte
	var ukmS cryptobyte.String
	var hasUKM bool
	if !k.ReadOptionalASN1(&ukmS, &hasUKM, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return false, nil, nil, "", bad
	}
	if hasUKM && !ukmS.ReadASN1Bytes(&ukm, cbasn1.OCTET_STRING) {
		return false, nil, nil, "", bad
	}
	var algID, wrapID, reks cryptobyte.String
	var alg, wrapAlg asn1.ObjectIdentifier
	if !k.ReadASN1(&algID, cbasn1.SEQUENCE) || !algID.ReadASN1ObjectIdentifier(&alg) ||
		!k.ReadASN1(&reks, cbasn1.SEQUENCE) {
		return false, nil, nil, "", bad
	}
	// Which RecipientEncryptedKey (if any) is the list's?
	var ek []byte
	var descs []string
	match := false
	for n := 0; !reks.Empty(); n++ {
		if n >= maxRecipients {
			return false, nil, nil, "", bad
		}
		var rek, rid cryptobyte.String
		var tag cbasn1.Tag
		var wrapped []byte
		if !reks.ReadASN1(&rek, cbasn1.SEQUENCE) || !rek.ReadAnyASN1Element(&rid, &tag) || !rek.ReadASN1Bytes(&wrapped, cbasn1.OCTET_STRING) {
			return false, nil, nil, "", bad
		}
		m, desc, err := ridMatches(rid, tag, cbasn1.Tag(0).Constructed().ContextSpecific(), id.Cert)
		if err != nil {
			return false, nil, nil, "", err
		}
		if m {
			match, ek = true, wrapped
			break
		}
		descs = append(descs, desc)
	}
	if !match {
		return false, descs, nil, "", nil
	}
	priv, ok := id.Key.(*ecdsa.PrivateKey)
	if !ok {
		return true, nil, nil, "", errors.New("smime: the message uses ECDH key agreement, but the list's key is not ECDSA")
	}
	// originator: [1] originatorKey OriginatorPublicKey, an ephemeral key
	// (RFC 5753 §3.1.1 requires it).
	var opk, opkAlg cryptobyte.String
	var point asn1.BitString
	if !orig.ReadASN1(&opk, cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!opk.ReadASN1(&opkAlg, cbasn1.SEQUENCE) || !opk.ReadASN1BitString(&point) {
		return true, nil, nil, "", malformed("the key agreement has no ephemeral originator key")
	}
	var newHash func() hash.Hash
	var kdfName string
	switch {
	case alg.Equal(oidECDHSHA1KDF):
		newHash, kdfName = sha1.New, "SHA-1"
	case alg.Equal(oidECDHSHA224KDF):
		newHash, kdfName = sha256.New224, "SHA-224"
	case alg.Equal(oidECDHSHA256KDF):
		newHash, kdfName = sha256.New, "SHA-256"
	case alg.Equal(oidECDHSHA384KDF):
		newHash, kdfName = sha512.New384, "SHA-384"
	case alg.Equal(oidECDHSHA512KDF):
		newHash, kdfName = sha512.New, "SHA-512"
	default:
		return true, nil, nil, "", fmt.Errorf("smime: the message uses key agreement %v, which the list does not read; use dhSinglePass-stdDH", alg)
	}
	if !algID.ReadASN1(&wrapID, cbasn1.SEQUENCE) || !wrapID.ReadASN1ObjectIdentifier(&wrapAlg) {
		return true, nil, nil, "", bad
	}
	var kekLen int
	var wrapName string
	switch {
	case wrapAlg.Equal(oidAES128Wrap):
		kekLen, wrapName = 16, "AES-128"
	case wrapAlg.Equal(oidAES192Wrap):
		kekLen, wrapName = 24, "AES-192"
	case wrapAlg.Equal(oidAES256Wrap):
		kekLen, wrapName = 32, "AES-256"
	default:
		return true, nil, nil, "", fmt.Errorf("smime: the message wraps its key with %v, which the list does not read; use AES key wrap", wrapAlg)
	}
	privECDH, err := priv.ECDH()
	if err != nil {
		return true, nil, nil, "", err
	}
	peer, err := privECDH.Curve().NewPublicKey(point.RightAlign())
	if err != nil {
		return true, nil, nil, "", malformed("the originator key is not a point on the list key's curve")
	}
	z, err := privECDH.ECDH(peer)
	if err != nil {
		return true, nil, nil, "", errUndecryptable
	}
	defer clear(z)
	info, err := eccSharedInfo(wrapAlg, ukm, kekLen*8)
	if err != nil {
		return true, nil, nil, "", err
	}
	kek := x963KDF(newHash, z, info, kekLen)
	defer clear(kek)
	key, err := aesKeyUnwrap(kek, ek)
	if err != nil || len(key) != keyLen {
		clear(key)
		return true, nil, nil, "", errUndecryptable
	}
	return true, nil, key, fmt.Sprintf("ECDH %s %s KDF, %s wrap", curveName(privECDH.Curve()), kdfName, wrapName), nil
}

func curveName(c ecdh.Curve) string {
	switch c {
	case ecdh.P256():
		return "P-256"
	case ecdh.P384():
		return "P-384"
	case ecdh.P521():
		return "P-521"
	}
	return "EC"
}

// openCBC decrypts AES-CBC content (RFC 3565 §2.3: the IV is the
// parameter) and removes the PKCS #7 padding. Padding is checked without
// branching on its bytes, and a bad one is errUndecryptable like any other
// failure.
func openCBC(key []byte, eci *encryptedContentInfo) ([]byte, error) {
	var iv []byte
	p := eci.params
	if !p.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) || len(iv) != aes.BlockSize {
		return nil, malformed("bad AES-CBC initialisation vector")
	}
	ct := eci.ciphertext
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errUndecryptable
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errUndecryptable
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	n, ok := unpad(plain)
	if !ok {
		clear(plain)
		return nil, errUndecryptable
	}
	clear(plain[n:])
	return plain[:n], nil
}

// unpad checks PKCS #7 padding in constant time with respect to its bytes
// and returns the unpadded length.
func unpad(b []byte) (int, bool) {
	pad := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		same := subtle.ConstantTimeByteEq(b[len(b)-i], byte(pad))
		good &= ^inPad | same
	}
	good &= 1
	return len(b) - pad*good, good == 1
}

// openGCM decrypts AES-GCM content (RFC 5084 §3.2: GCMParameters, a nonce
// and the ICV length, default 12) with authAttrs as additional data.
func openGCM(key []byte, eci *encryptedContentInfo, aad, mac []byte) ([]byte, error) {
	var params cryptobyte.String
	var nonce []byte
	icvLen := 12
	p := eci.params
	if !p.ReadASN1(&params, cbasn1.SEQUENCE) || !params.ReadASN1Bytes(&nonce, cbasn1.OCTET_STRING) {
		return nil, malformed("bad AES-GCM parameters")
	}
	if !params.Empty() && !params.ReadASN1Integer(&icvLen) {
		return nil, malformed("bad AES-GCM parameters")
	}
	if icvLen < 12 || icvLen > 16 || len(mac) != icvLen || len(nonce) == 0 || len(nonce) > 64 {
		return nil, malformed("unsupported AES-GCM nonce or tag length")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errUndecryptable
	}
	var aead cipher.AEAD
	switch {
	case len(nonce) == 12:
		aead, err = cipher.NewGCMWithTagSize(block, icvLen)
	case icvLen == 16:
		aead, err = cipher.NewGCMWithNonceSize(block, len(nonce))
	default:
		return nil, malformed("unsupported AES-GCM nonce and tag length combination")
	}
	if err != nil {
		return nil, errUndecryptable
	}
	sealed := make([]byte, 0, len(eci.ciphertext)+len(mac))
	sealed = append(sealed, eci.ciphertext...)
	sealed = append(sealed, mac...)
	plain, err := aead.Open(sealed[:0], nonce, sealed, aad)
	if err != nil {
		clear(sealed)
		return nil, errUndecryptable
	}
	return plain, nil
}
