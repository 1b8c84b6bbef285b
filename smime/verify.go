package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxSigners bounds the SignerInfos tried.
const maxSigners = 16

// Verified is a member's signature that verified against their registered
// certificate.
type Verified struct {
	// Content is what the signature covers, a MIME entity: for
	// multipart/signed the first part exactly as it stood between the
	// boundaries, for signed-data the encapsulated content.
	Content []byte
	// Detached is true for multipart/signed, false for signed-data.
	Detached bool
	// SigningTime is the signingTime attribute (zero if absent): what the
	// signer's clock said, not a proof.
	SigningTime time.Time
}

// ErrNotSigned is returned for an entity that carries no S/MIME signature.
var ErrNotSigned = errors.New("smime: the message is not S/MIME signed")

// ErrNotAuthor reports a signature by a certificate other than the
// author's registered one. Signers describes the signing certificate(s)
// (their addresses, else their subject and serial).
type ErrNotAuthor struct{ Signers []string }

// Error says whose signature it is and what to do.
func (e *ErrNotAuthor) Error() string {
	who := "a certificate the message does not include"
	if len(e.Signers) > 0 {
		who = strings.Join(e.Signers, "; ")
	}
	return "smime: the message is signed by " + who + ", not by the author's registered certificate; " +
		"sign with the certificate registered for your address, or ask the secretary to register the one you sign with"
}

// ErrBadSignature is wrapped by every error for a signature made with the
// author's certificate that does not verify.
var ErrBadSignature = errors.New("smime: the S/MIME signature does not verify")

// Verify checks the S/MIME signature of a MIME entity (header, blank line,
// body): multipart/signed with application/pkcs7-signature (or
// x-pkcs7-signature), or application/pkcs7-mime; smime-type=signed-data,
// against author, the certificate registered for the From address. Only
// author counts: certificates included in the message are used for nothing
// but naming a signer who is someone else (*ErrNotAuthor). There is no
// chain building and no trust store: registering the certificate was the
// trust decision.
//
// The signed part of multipart/signed is taken exactly as it stands between
// the boundaries (it must be in its canonical CRLF form, as on the wire);
// if it has bare LF line ends (a message stored with Unix line ends) and
// does not verify as is, its CRLF form is tried.
func Verify(entityBytes []byte, author *x509.Certificate) (v *Verified, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME signature")
	return verify(entityBytes, author)
}

// verify is Verify without the recover (for the fuzz target).
func verify(entityBytes []byte, author *x509.Certificate) (*Verified, error) {
	e, err := splitEntity(entityBytes)
	if err != nil {
		return nil, err
	}
	k, params := e.kind()
	switch k {
	case KindSignedDetached:
		signed, sigPart, err := signedParts(e.body, params["boundary"])
		if err != nil {
			return nil, err
		}
		se, err := splitEntity(sigPart)
		if err != nil {
			return nil, err
		}
		t, _, err := se.contentType()
		if err != nil {
			return nil, err
		}
		switch t {
		case "application/pkcs7-signature", "application/x-pkcs7-signature", "application/octet-stream":
		default:
			return nil, malformed("the second part of multipart/signed is %s, not application/pkcs7-signature", t)
		}
		sig, err := se.decodedBody(1 << 20)
		if err != nil {
			return nil, err
		}
		return verifyDetached(signed, sig, author)
	case KindSignedOpaque:
		der, err := e.decodedBody(MaxCMSInput)
		if err != nil {
			return nil, err
		}
		return verifyCMS(der, nil, author)
	case KindEnveloped, KindAuthEnveloped:
		return nil, errors.New("smime: the message is encrypted; decrypt it first")
	}
	return nil, ErrNotSigned
}

// VerifyDetached checks a detached SignedData (DER or BER) over content
// against author. See Verify.
func VerifyDetached(content, sig []byte, author *x509.Certificate) (v *Verified, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME signature")
	return verifyDetached(content, sig, author)
}

func verifyDetached(content, sig []byte, author *x509.Certificate) (*Verified, error) {
	v, err := verifyCMS(sig, content, author)
	if err != nil && errors.Is(err, errDigest) && bytes.IndexByte(content, '\n') >= 0 {
		if c := canonicalCRLF(content); len(c) != len(content) {
			if v2, err2 := verifyCMS(sig, c, author); err2 == nil {
				return v2, nil
			}
		}
	}
	return v, err
}

// VerifyOpaque checks an encapsulating SignedData (DER or BER; the content
// of a signed-data entity) against author and returns the content. See
// Verify.
func VerifyOpaque(der []byte, author *x509.Certificate) (v *Verified, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME signature")
	return verifyCMS(der, nil, author)
}

var errDigest = fmt.Errorf("%w: the signed content was changed after it was signed (message digest mismatch)", ErrBadSignature)

// verifyCMS verifies SignedData data; detached content if content != nil.
// github.com/smallstep/pkcs7 parses and checks each signature; this
// function decides which certificate it is checked with: only author.
func verifyCMS(data, content []byte, author *x509.Certificate) (*Verified, error) {
	if author == nil {
		return nil, errors.New("smime: no certificate on record for the author")
	}
	p7, der, err := parseSignedData(data)
	if err != nil {
		return nil, err
	}
	detached := content != nil
	if detached {
		if len(p7.Content) > 0 {
			return nil, malformed("multipart/signed whose signature also encapsulates content")
		}
		p7.Content = content
	} else if len(p7.Content) == 0 {
		return nil, malformed("signed-data without content (a detached signature needs multipart/signed)")
	}
	if len(p7.Signers) == 0 {
		n, ski := countSigners(der)
		if ski > 0 {
			return nil, malformed("the signer is identified by subject key identifier, which the list does not read; sign with the default settings (issuer and serial number), as Outlook, Apple Mail and Thunderbird do")
		}
		if n > 0 {
			return nil, malformed("unreadable SignerInfo")
		}
		return nil, ErrNotSigned
	}
	if len(p7.Signers) > maxSigners {
		return nil, malformed("more than %d signers", maxSigners)
	}
	included := p7.Certificates
	var namesAuthor bool
	var firstErr error
	var others []string
	for i := range p7.Signers {
		si := p7.Signers[i]
		ias := si.IssuerAndSerialNumber
		isAuthor := bytes.Equal(ias.IssuerName.FullBytes, author.RawIssuer) &&
			ias.SerialNumber != nil && ias.SerialNumber.Cmp(author.SerialNumber) == 0
		if !isAuthor {
			others = append(others, describeSigner(included, ias.IssuerName.FullBytes, ias.SerialNumber))
			continue
		}
		namesAuthor = true
		if alg := si.DigestAlgorithm.Algorithm; !alg.Equal(oidSHA256) && !alg.Equal(oidSHA384) && !alg.Equal(oidSHA512) {
			// crypto/x509 still accepts SHA-1 signatures; SHA-1 collisions
			// are practical (SHAttered, 2017; chosen-prefix, 2020).
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: it uses the digest %s, which the list does not accept; sign with SHA-256 (any current client does)", ErrBadSignature, digestName(alg))
			}
			continue
		}
		one := *p7
		one.Signers = p7.Signers[i : i+1]
		one.Certificates = []*x509.Certificate{author}
		if err := one.Verify(); err != nil {
			if firstErr == nil {
				firstErr = explainVerifyError(err)
			}
			continue
		}
		var ct asn1.ObjectIdentifier
		if err := one.UnmarshalSignedAttribute(pkcs7.OIDAttributeContentType, &ct); err == nil && !ct.Equal(oidData) {
			// RFC 5652 §11.1: the attribute must equal eContentType, and
			// S/MIME signs id-data.
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: the signed content type is %v, not data", ErrBadSignature, ct)
			}
			continue
		}
		v := &Verified{Content: p7.Content, Detached: detached}
		var st time.Time
		if err := one.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err == nil {
			v.SigningTime = st
		}
		return v, nil
	}
	if !namesAuthor {
		return nil, &ErrNotAuthor{Signers: others}
	}
	return nil, firstErr
}

// parseSignedData reads a ContentInfo holding SignedData (DER or BER),
// bounded; it also returns the DER form.
func parseSignedData(data []byte) (*pkcs7.PKCS7, []byte, error) {
	if len(data) > MaxCMSInput {
		return nil, nil, ErrTooLarge
	}
	der, err := berToDER(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ctype, _, err := parseContentInfo(der)
	if err != nil {
		return nil, nil, err
	}
	if !ctype.Equal(oidSignedData) {
		return nil, nil, ErrNotSigned
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		if strings.Contains(err.Error(), "structure error") {
			return nil, nil, malformed("unreadable SignedData (a signer identified by subject key identifier is not supported): %v", err)
		}
		return nil, nil, malformed("unreadable SignedData: %v", err)
	}
	return p7, der, nil
}

// explainVerifyError turns the library's error into a sentence for the
// member (the library's texts name internals; none quotes content).
func explainVerifyError(err error) error {
	var md *pkcs7.MessageDigestMismatchError
	var st *pkcs7.SigningTimeNotValidError
	switch {
	case errors.As(err, &md):
		return errDigest
	case errors.As(err, &st):
		return fmt.Errorf("%w: it was made on %s, when the certificate was not valid (%s to %s)", ErrBadSignature,
			st.SigningTime.UTC().Format("2006-01-02"), st.NotBefore.UTC().Format("2006-01-02"), st.NotAfter.UTC().Format("2006-01-02"))
	case errors.Is(err, x509.ErrUnsupportedAlgorithm), strings.Contains(err.Error(), "unsupported"), strings.Contains(err.Error(), "insecure"):
		return fmt.Errorf("%w: it uses an algorithm the list does not accept (%v); sign with SHA-256 or better", ErrBadSignature, err)
	}
	return fmt.Errorf("%w: the signature value is wrong (the message was altered, or signed with another key)", ErrBadSignature)
}

// describeSigner names the certificate a SignerInfo points to: by its
// addresses when the message includes it, else by issuer and serial.
func describeSigner(included []*x509.Certificate, issuer []byte, serial *big.Int) string {
	for _, c := range included {
		if bytes.Equal(c.RawIssuer, issuer) && serial != nil && c.SerialNumber.Cmp(serial) == 0 {
			if emails := CertEmails(c); len(emails) > 0 {
				return printable("the certificate of " + strings.Join(emails, ", "))
			}
			return printable("the certificate " + c.Subject.String())
		}
	}
	if serial == nil {
		serial = new(big.Int)
	}
	return describeIssuerSerial(issuer, serial) + " (not included in the message)"
}

// countSigners counts the SignerInfos of a DER ContentInfo(SignedData)
// (RFC 5652 §5.1, §5.3) and how many name their signer by subject key
// identifier ([0], version 3), which the CMS library does not read.
func countSigners(der []byte) (n, ski int) {
	_, content, err := parseContentInfo(der)
	if err != nil {
		return 0, 0
	}
	var sd, set cryptobyte.String
	if !content.ReadASN1(&sd, cbasn1.SEQUENCE) || !sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) ||
		!sd.SkipASN1(cbasn1.SEQUENCE) || !sd.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!sd.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) || !sd.ReadASN1(&set, cbasn1.SET) {
		return 0, 0
	}
	for !set.Empty() && n < maxSigners {
		var si cryptobyte.String
		if !set.ReadASN1(&si, cbasn1.SEQUENCE) || !si.SkipASN1(cbasn1.INTEGER) {
			break
		}
		n++
		if si.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()) {
			ski++
		}
	}
	return n, ski
}

func digestName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidSHA1):
		return "SHA-1"
	case oid.Equal(oidSHA224):
		return "SHA-224"
	}
	return oid.String()
}

// OpaqueContent returns the content a signed-data entity's SignedData
// (DER or BER) encapsulates, without checking any signature: for a post
// whose signature the list cannot verify (no certificate on record, or
// someone else's), whose text members still receive, marked as not
// verified.
func OpaqueContent(der []byte) (content []byte, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME signature")
	p7, _, err := parseSignedData(der)
	if err != nil {
		return nil, err
	}
	if len(p7.Content) == 0 {
		return nil, malformed("signed-data without content (a detached signature needs multipart/signed)")
	}
	return p7.Content, nil
}

// SignerCertificate returns the certificate a SignedData (DER or BER)
// includes for its first signer, unverified: what a member's client sends
// along with a signature ("send my certificate"). Verify the signature
// with it before trusting that its sender holds the key.
func SignerCertificate(der []byte) (cert *x509.Certificate, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME signature")
	p7, _, err := parseSignedData(der)
	if err != nil {
		return nil, err
	}
	if len(p7.Signers) == 0 {
		return nil, ErrNotSigned
	}
	ias := p7.Signers[0].IssuerAndSerialNumber
	for _, c := range p7.Certificates {
		if bytes.Equal(c.RawIssuer, ias.IssuerName.FullBytes) && ias.SerialNumber != nil && c.SerialNumber.Cmp(ias.SerialNumber) == 0 {
			return c, nil
		}
	}
	return nil, errors.New("smime: the signature does not include its signer's certificate")
}
