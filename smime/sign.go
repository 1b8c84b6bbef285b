package smime

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
)

// smimeCapability is one entry of SMIMECapabilities (RFC 8551 §2.5.2).
type smimeCapability struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// listCapabilities is what the list tells clients it can decrypt, most
// preferred first (RFC 8551 §2.5.2, §2.7.1): AES-GCM in AuthEnvelopedData
// first, because it authenticates the ciphertext (a client that knows it
// uses it; one that does not skips it), then AES-CBC.
var listCapabilities = []smimeCapability{
	{Algorithm: oidAES256GCM},
	{Algorithm: oidAES128GCM},
	{Algorithm: oidAES256CBC},
	{Algorithm: oidAES192CBC},
	{Algorithm: oidAES128CBC},
}

// SignDetached returns a detached CMS SignedData (RFC 5652 §5, DER) over
// content, by the list: SHA-256, the list's certificate (and chain) in
// certificates, and the signed attributes contentType, messageDigest,
// signingTime and SMIMECapabilities (so clients learn what to encrypt to
// the list with, RFC 8551 §2.5.2). The signature is made by
// github.com/smallstep/pkcs7.
func (id *Identity) SignDetached(content []byte) (sig []byte, err error) {
	defer recoverAs(&err, "smime: signing failed")
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	cfg := pkcs7.SignerInfoConfig{ExtraSignedAttributes: []pkcs7.Attribute{
		{Type: oidSMIMECapabilities, Value: listCapabilities},
	}}
	if len(id.Chain) > 0 {
		err = sd.AddSignerChain(id.Cert, id.Key, id.Chain, cfg)
	} else {
		err = sd.AddSigner(id.Cert, id.Key, cfg)
	}
	if err != nil {
		return nil, err
	}
	sd.Detach()
	return sd.Finish()
}

// SignedContentType is the Content-Type of the entity SignEntity returns,
// without its boundary (RFC 8551 §3.5.3; micalg per RFC 5751 §3.4.3.2).
const SignedContentType = `multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256`

// SignEntity signs a MIME entity (header fields, blank line, body) and
// returns the multipart/signed entity that replaces it (RFC 8551 §3.5.3):
// its own Content-Type header, a blank line, then the two parts, the
// entity unchanged and the signature as application/pkcs7-signature. This
// is what the list encrypts for each member (sign, then encrypt).
//
// Bare LF line ends in entity are first turned into CRLF: the signature
// covers the canonical form (RFC 8551 §3.1.1), and that is the form mail
// travels in. The entity should be 7bit or quoted-printable/base64 encoded
// (RFC 8551 §3.1.2) so that no transport changes it.
func (id *Identity) SignEntity(entity []byte) ([]byte, error) {
	entity = canonicalCRLF(entity)
	sig, err := id.SignDetached(entity)
	if err != nil {
		return nil, err
	}
	var rb [18]byte
	rand.Read(rb[:])
	boundary := "----=_isaclist_signed_" + hex.EncodeToString(rb[:])
	if bytes.Contains(entity, []byte(boundary)) {
		return nil, errors.New("smime: boundary collision") // 2^-144: not in this universe
	}
	var b bytes.Buffer
	b.Grow(len(entity) + len(sig)*2 + 512)
	fmt.Fprintf(&b, "Content-Type: %s;\r\n\tboundary=\"%s\"\r\n\r\n", SignedContentType, boundary)
	b.WriteString("This is an S/MIME signed message.\r\n\r\n")
	b.WriteString("--" + boundary + "\r\n")
	b.Write(entity)
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"smime.p7s\"\r\n")
	b.WriteString("Content-Description: S/MIME Cryptographic Signature\r\n\r\n")
	if _, err := WriteBase64(&b, [][]byte{sig}); err != nil {
		return nil, err
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// canonicalCRLF returns b with every bare LF turned into CRLF (b itself if
// it has none).
func canonicalCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// recoverAs turns a panic below (in the CMS library, or on malformed input
// the checks missed) into an error with a fixed text: the panic's own value
// might quote decrypted content and is not kept.
func recoverAs(err *error, msg string) {
	if r := recover(); r != nil {
		*err = errors.New(msg)
	}
}
