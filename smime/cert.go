package smime

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
)

// MinRSABits is the smallest RSA modulus accepted for a member's
// certificate (NIST SP 800-131A, BSI TR-02102: 2048 bits).
const MinRSABits = 2048

// maxCertInput bounds what ParseCertificate reads: a certificate is a few
// KB; a PEM file with a chain a few times that.
const maxCertInput = 256 << 10

// Check names the certificate check that failed.
type Check string

// The certificate checks, in the order CheckMemberCert applies them.
const (
	CheckParse       Check = "parse"         // not a certificate at all
	CheckValidity    Check = "validity"      // expired, or not yet valid
	CheckKey         Check = "key"           // algorithm or size refused
	CheckKeyUsage    Check = "key-usage"     // may not be used for encryption
	CheckExtKeyUsage Check = "ext-key-usage" // not for e-mail protection
	CheckAddress     Check = "address"       // does not name the member's address
)

// CertError is a refused certificate. Reason is a sentence a secretary can
// act on (what is wrong and what to ask the member for); Check says which
// check failed, for programs and tests.
type CertError struct {
	Check  Check
	Reason string
}

// Error returns the reason.
func (e *CertError) Error() string { return e.Reason }

func certErr(c Check, format string, a ...any) error {
	return &CertError{Check: c, Reason: fmt.Sprintf(format, a...)}
}

// CertInfo describes a certificate for `member list` and the audit log.
type CertInfo struct {
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	Fingerprint  string    `json:"fingerprint"` // SHA-256 of the DER, 64 lowercase hex digits
	SerialNumber string    `json:"serial"`      // hex
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	KeyAlgorithm string    `json:"key_algorithm"` // "RSA-3072", "ECDSA P-256"
	Emails       []string  `json:"emails"`        // rfc822Name SANs, then subject emailAddress values
	SelfSigned   bool      `json:"self_signed"`
}

// Info describes cert.
func Info(cert *x509.Certificate) CertInfo {
	sum := sha256.Sum256(cert.Raw)
	return CertInfo{
		Subject:      printable(cert.Subject.String()),
		Issuer:       printable(cert.Issuer.String()),
		Fingerprint:  hex.EncodeToString(sum[:]),
		SerialNumber: hex.EncodeToString(cert.SerialNumber.Bytes()),
		NotBefore:    cert.NotBefore,
		NotAfter:     cert.NotAfter,
		KeyAlgorithm: keyAlgorithm(cert),
		Emails:       CertEmails(cert),
		SelfSigned:   bytes.Equal(cert.RawIssuer, cert.RawSubject),
	}
}

func keyAlgorithm(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return cert.PublicKeyAlgorithm.String()
}

// oidEmailAddress is PKCS #9 emailAddress (RFC 5280 §4.1.2.6 allows it in
// the subject for legacy S/MIME certificates; many still carry only that).
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// CertEmails returns the e-mail addresses a certificate names: the
// rfc822Name entries of its subjectAltName (RFC 8550 §3), then any
// emailAddress attribute of its subject, without duplicates (compared
// case-insensitively).
func CertEmails(cert *x509.Certificate) []string {
	var out []string
	add := func(a string) {
		a = strings.TrimSpace(a)
		if a == "" {
			return
		}
		for _, o := range out {
			if strings.EqualFold(o, a) {
				return
			}
		}
		out = append(out, a)
	}
	for _, e := range cert.EmailAddresses {
		add(e)
	}
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if s, ok := n.Value.(string); ok {
				add(s)
			}
		}
	}
	return out
}

// ParseCertificate reads one X.509 certificate, PEM ("CERTIFICATE" block; the
// first one if the file holds a chain) or DER.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	if len(data) > maxCertInput {
		return nil, certErr(CheckParse, "the file is %d KB, far too large for a certificate; send the member's certificate alone (.pem, .crt or .cer)", len(data)>>10)
	}
	der := data
	if bytes.Contains(data, []byte("-----BEGIN")) {
		rest := data
		der = nil
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type == "CERTIFICATE" || block.Type == "X509 CERTIFICATE" {
				der = block.Bytes
				break
			}
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, certErr(CheckParse, "the file holds a private key; the list needs only the member's certificate (public part), and the member should consider that key exposed")
			}
		}
		if der == nil {
			return nil, certErr(CheckParse, "the file holds no PEM \"CERTIFICATE\" block; export the member's certificate as PEM or DER (.cer)")
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		if looksLikePKCS12(der) {
			return nil, certErr(CheckParse, "the file looks like a PKCS #12 (.p12/.pfx) bundle that holds a private key; export the certificate alone (.cer, PEM or DER)")
		}
		return nil, certErr(CheckParse, "the file is not an X.509 certificate (PEM or DER) (%v); export the member's certificate as .pem or .cer", err)
	}
	return cert, nil
}

// looksLikePKCS12 recognises a PFX (RFC 7292 §4): SEQUENCE { INTEGER 3, ... }.
func looksLikePKCS12(der []byte) bool {
	var pfx struct {
		Version  int
		AuthSafe asn1.RawValue
		MacData  asn1.RawValue `asn1:"optional"`
	}
	_, err := asn1.Unmarshal(der, &pfx)
	return err == nil && pfx.Version == 3
}

// CheckMemberCert parses a member's certificate (PEM or DER) and checks that
// the list can encrypt to it for address at time now: currently valid, an
// RSA key of at least MinRSABits or an ECDSA P-256/P-384 key, key usage that
// allows encryption (RSA: keyEncipherment; ECDSA: keyAgreement; an absent
// KeyUsage extension allows everything, RFC 5280 §4.2.1.3), extended key
// usage (if present) that includes emailProtection or anyExtendedKeyUsage,
// and an e-mail address equal to address, compared case-insensitively
// (a certificate that names several addresses passes when one matches).
//
// Any issuer is accepted: a self-signed certificate or an organisation's own
// CA. Registering the certificate is the trust decision, as for an OpenPGP
// key; no chain is built and no revocation is checked. A refusal is a
// *CertError naming the check and saying what to do.
func CheckMemberCert(data []byte, address string, now time.Time) (*x509.Certificate, CertInfo, error) {
	cert, err := ParseCertificate(data)
	if err != nil {
		return nil, CertInfo{}, err
	}
	info := Info(cert)
	if err := checkCert(cert, address, now, false); err != nil {
		return nil, info, err
	}
	return cert, info, nil
}

// CheckCert applies CheckMemberCert's checks to a parsed certificate: for
// a member's certificate already on record, before each copy (it may have
// expired since it was registered).
func CheckCert(cert *x509.Certificate, address string, now time.Time) error {
	return checkCert(cert, address, now, false)
}

// checkCert runs the checks; signing adds digitalSignature to the key
// usages required (the list's own certificate).
func checkCert(cert *x509.Certificate, address string, now time.Time, signing bool) error {
	date := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
	if now.After(cert.NotAfter) {
		return certErr(CheckValidity, "the certificate expired on %s; ask the member for their current certificate", date(cert.NotAfter))
	}
	if now.Before(cert.NotBefore) {
		return certErr(CheckValidity, "the certificate is not valid until %s; register it from then on, or check this server's clock", date(cert.NotBefore))
	}

	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return certErr(CheckKey, "the certificate's RSA key has %d bits; at least %d are required: ask the member for a certificate with a stronger key", bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return certErr(CheckKey, "the certificate's key is on curve %s; only P-256 and P-384 (or RSA of %d bits or more) work with the mail clients members use: ask for such a certificate", k.Curve.Params().Name, MinRSABits)
		}
	default:
		return certErr(CheckKey, "the certificate's key is %s; S/MIME encryption needs an RSA (%d bits or more) or ECDSA P-256/P-384 key: ask the member for such a certificate", cert.PublicKeyAlgorithm, MinRSABits)
	}

	if cert.KeyUsage != 0 {
		var need x509.KeyUsage
		var what string
		switch cert.PublicKey.(type) {
		case *rsa.PublicKey:
			need, what = x509.KeyUsageKeyEncipherment, "keyEncipherment"
		case *ecdsa.PublicKey:
			need, what = x509.KeyUsageKeyAgreement, "keyAgreement"
		}
		if cert.KeyUsage&need == 0 {
			if signing {
				return certErr(CheckKeyUsage, "the certificate's key usage does not include %s, which encryption needs", what)
			}
			return certErr(CheckKeyUsage, "the certificate may not be used for encryption (its key usage lacks %s; it is probably a signing-only certificate): ask the member for their encryption certificate", what)
		}
		if signing && cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return certErr(CheckKeyUsage, "the certificate's key usage does not include digitalSignature, which signing the list's mail needs")
		}
	}
	if len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0 {
		ok := false
		for _, u := range cert.ExtKeyUsage {
			if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
				ok = true
			}
		}
		if !ok {
			return certErr(CheckExtKeyUsage, "the certificate is not meant for e-mail (its extended key usage lacks emailProtection): ask for an S/MIME (e-mail) certificate")
		}
	}

	emails := CertEmails(cert)
	for _, e := range emails {
		if strings.EqualFold(e, address) {
			return nil
		}
	}
	if len(emails) == 0 {
		return certErr(CheckAddress, "the certificate names no e-mail address; S/MIME certificates name their owner's address (subjectAltName): ask for the certificate issued for %s", address)
	}
	return certErr(CheckAddress, "the certificate is for %s, not for %s: register it for the address it names, or ask for the certificate issued for %s", printable(strings.Join(emails, ", ")), address, address)
}

// printable returns s, from a certificate or a message (anyone's input), fit
// for a log line or a reply: control characters become '?', and it is cut
// at 200 bytes.
func printable(s string) string {
	const max = 200
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = '?'
		}
	}
	if len(b) > max {
		return strings.ToValidUTF8(string(b[:max]), "") + "..."
	}
	return string(b)
}
