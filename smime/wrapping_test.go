package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
)

// The "signature wrapping" classes of the S/MIME attack literature: a
// signature only counts when the author's registered certificate made it,
// over the content the list then distributes, whatever else the message
// carries.

// signerSpec is one SignerInfo: its member and digest (nil: SHA-256).
type signerSpec struct {
	m      member
	digest asn1.ObjectIdentifier
}

// signedBy builds a SignedData over content with a SignerInfo per signer,
// carrying the signers' certificates; eContentType (if not nil) replaces
// id-data as the content type, and so the signed content-type attribute.
func signedBy(t *testing.T, content []byte, detached bool, eContentType asn1.ObjectIdentifier, signers ...signerSpec) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	if eContentType != nil {
		sd.GetSignedData().ContentInfo.ContentType = eContentType
	}
	for _, s := range signers {
		d := s.digest
		if d == nil {
			d = pkcs7.OIDDigestAlgorithmSHA256
		}
		sd.SetDigestAlgorithm(d)
		if err := sd.AddSigner(s.m.cert, s.m.key, pkcs7.SignerInfoConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if detached {
		sd.Detach()
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// multipartSigned wraps a detached signature over entity.
func multipartSigned(entity, sig []byte) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\n")
	b.Write(entity)
	b.WriteString("\r\n--b1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	WriteBase64(&b, [][]byte{sig})
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}

func TestSignatureWrapping(t *testing.T) {
	alice := newMember(t, "alice@member-a.example", "rsa2048-a")
	bob := newMember(t, "bob@member-b.example", "p256-a")
	entity := canonicalCRLF(innerEntity("Patch CVE-2026-0001 now.\n"))

	// Mallory makes a certificate with the issuer and serial number of
	// Alice's (what a SignerInfo names), her own key, and Alice's
	// address, and sends it along: the list must check with the
	// registered certificate, not the included one.
	mallory := testKey(t, "p256-b")
	forged := makeCert(t, certOpts{key: mallory, cn: alice.cert.Subject.CommonName, emails: []string{alice.addr},
		serial: alice.cert.SerialNumber.Int64(), keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement})
	malloryAsAlice := member{addr: alice.addr, cert: forged, key: mallory}
	if !bytes.Equal(forged.RawIssuer, alice.cert.RawIssuer) || forged.SerialNumber.Cmp(alice.cert.SerialNumber) != 0 {
		t.Fatal("the forged certificate's issuer or serial differs from Alice's")
	}

	tampered := func(der []byte) []byte {
		// Flip the last byte of the DER: the signature of the last
		// SignerInfo in DER order (SET OF sorts by encoding, and Alice's
		// RSA SignerInfo is longer than Bob's ECDSA one, so it comes last).
		out := append([]byte(nil), der...)
		out[len(out)-1] ^= 1
		return out
	}

	cases := []struct {
		name    string
		post    []byte
		ok      bool
		errIs   error
		notAuth bool
		has     string
	}{
		{"Alice alone", multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: alice})), true, nil, false, ""},
		{"Alice and Bob co-sign", multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: bob}, signerSpec{m: alice})), true, nil, false, ""},
		{"Bob's signature, the message names Alice", multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: bob})), false, nil, true, "bob@member-b.example"},
		{"Mallory's key in a certificate with Alice's issuer and serial, included",
			multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: malloryAsAlice})), false, ErrBadSignature, false, ""},
		{"Mallory's forged certificate opaque",
			pkcs7MIMEEntity(signedBy(t, entity, false, nil, signerSpec{m: malloryAsAlice})), false, ErrBadSignature, false, ""},
		{"Bob valid, Alice's SignerInfo altered", multipartSigned(entity, tampered(signedBy(t, entity, true, nil, signerSpec{m: bob}, signerSpec{m: alice}))), false, ErrBadSignature, false, ""},
		{"Alice over SHA-1", multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: alice, digest: pkcs7.OIDDigestAlgorithmSHA1})), false, ErrBadSignature, false, "SHA-1"},
		{"SHA-1 Alice, SHA-256 Bob", multipartSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: bob}, signerSpec{m: alice, digest: pkcs7.OIDDigestAlgorithmSHA1})), false, ErrBadSignature, false, "SHA-1"},
		{"signed content-type attribute is not data (detached)",
			multipartSigned(entity, signedBy(t, entity, true, pkcs7.OIDSignedData, signerSpec{m: alice})), false, ErrBadSignature, false, "not data"},
		{"signature over other content", multipartSigned(entity, signedBy(t, canonicalCRLF(innerEntity("Ignore the patch.\n")), true, nil, signerSpec{m: alice})), false, ErrBadSignature, false, "changed"},
		{"signature part first, content second", swappedSigned(entity, signedBy(t, entity, true, nil, signerSpec{m: alice})), false, ErrMalformed, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Verify(c.post, alice.cert)
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !bytes.Equal(v.Content, entity) {
					t.Fatalf("verified content %q, want the signed entity", v.Content)
				}
				return
			}
			if err == nil {
				t.Fatalf("verified (content %q)", v.Content)
			}
			var na *ErrNotAuthor
			if c.notAuth && !errors.As(err, &na) {
				t.Fatalf("got %v, want *ErrNotAuthor", err)
			}
			if c.errIs != nil && !errors.Is(err, c.errIs) {
				t.Fatalf("got %v, want %v", err, c.errIs)
			}
			if !strings.Contains(err.Error(), c.has) {
				t.Fatalf("got %q, want it to name %q", err, c.has)
			}
			if strings.Contains(err.Error(), "CVE-2026") || strings.Contains(err.Error(), "Ignore the patch") {
				t.Fatalf("the error quotes the content: %v", err)
			}
		})
	}
}

func pkcs7MIMEEntity(der []byte) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	WriteBase64(&b, [][]byte{der})
	return b.Bytes()
}

func swappedSigned(entity, sig []byte) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	WriteBase64(&b, [][]byte{sig})
	b.WriteString("\r\n--b1\r\n")
	b.Write(entity)
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}
