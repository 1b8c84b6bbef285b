package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Content encryption: AES-256-CBC in EnvelopedData (RFC 5652 §6, RFC 3565).
// It is what Outlook, Apple Mail and Thunderbird all read, back to versions
// members still run; RFC 8551 §2.7 makes it a MUST for receivers. AES-GCM
// in AuthEnvelopedData (RFC 5083/5084) would add integrity, but Apple Mail
// and Thunderbird before 115 cannot read it, and a copy a member cannot
// read is worse than one without a MAC: the list signs the content inside
// the encryption, so a client that checks signatures notices tampering.
// The list reads GCM from members (Decrypt) and says so in the
// SMIMECapabilities it signs.
//
// Key transport to RSA certificates: RSAES-PKCS1-v1_5 (rsaEncryption).
// RSAES-OAEP (RFC 3560) would be the better primitive, but Apple Mail and
// Thunderbird do not reliably decrypt it and Outlook only where the
// administrator turned it on; a copy the member cannot open defeats the
// purpose. The Bleichenbacher attack on v1.5 needs a decryption oracle:
// the member's client is none (it tells no sender whether padding was
// valid), and the list's own decryption of posts is built not to be one
// (see Decrypt).
//
// Key agreement to ECDSA P-256/P-384 certificates: ephemeral-static ECDH
// (RFC 5753 §3.1) with dhSinglePass-stdDH-sha256kdf-scheme (the scheme
// RFC 5753 §8 says implementations MUST support; Windows CNG, NSS and
// OpenSSL read it) and id-aes256-wrap (the content key is AES-256, so the
// key-encryption key is as strong).

const contentKeyLen = 32 // AES-256

// Envelope is one post encrypted once: the shared EncryptedContentInfo and
// the content-encryption key, from which a RecipientInfo is made for each
// member. Shared is what the queue stores once per post; each member's copy
// adds only its RecipientInfo (a few hundred bytes). Wipe the key once the
// recipient infos are made: the queue never needs it again.
type Envelope struct {
	// Shared is the DER EncryptedContentInfo (RFC 5652 §6.1): id-data,
	// aes256-CBC with its IV, and the ciphertext.
	Shared []byte
	key    []byte
}

// Encrypt encrypts content (a MIME entity, CRLF line ends) once under a
// fresh AES-256 key with a random IV.
func Encrypt(content []byte) (*Envelope, error) {
	key := make([]byte, contentKeyLen)
	iv := make([]byte, aes.BlockSize)
	rand.Read(key)
	rand.Read(iv)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	// PKCS #7 padding (RFC 5652 §6.3): 1 to 16 bytes, each the pad length.
	pad := aes.BlockSize - len(content)%aes.BlockSize
	ctLen := len(content) + pad

	// The plaintext is written straight into the output and encrypted in
	// place: one allocation the size of the post.
	b := cryptobyte.NewBuilder(make([]byte, 0, ctLen+64))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidData)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidAES256CBC)
			b.AddASN1OctetString(iv)
		})
		// encryptedContent [0] IMPLICIT OCTET STRING: primitive, tag 0x80.
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(content)
			for i := 0; i < pad; i++ {
				b.AddUint8(byte(pad))
			}
		})
	})
	out, err := b.Bytes()
	if err != nil {
		clear(key)
		return nil, err
	}
	ct := out[len(out)-ctLen:]
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	return &Envelope{Shared: out, key: key}, nil
}

// Wipe overwrites the content-encryption key; RecipientInfo fails after.
func (e *Envelope) Wipe() {
	clear(e.key)
	e.key = nil
}

// RecipientInfo returns the DER RecipientInfo that gives cert's owner the
// content key: a KeyTransRecipientInfo (RSA, PKCS #1 v1.5) or a
// KeyAgreeRecipientInfo (ECDSA P-256/P-384, ephemeral-static ECDH), naming
// the certificate by issuer and serial number (RFC 5652 §6.2.1, §6.2.2).
// The certificate should have passed CheckCert.
func (e *Envelope) RecipientInfo(cert *x509.Certificate) ([]byte, error) {
	if e.key == nil {
		return nil, errors.New("smime: the content key was wiped")
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return ktri(cert, pub, e.key)
	case *ecdsa.PublicKey:
		return kari(cert, pub, e.key)
	}
	return nil, fmt.Errorf("smime: cannot encrypt to a %s key", cert.PublicKeyAlgorithm)
}

// addIssuerAndSerial writes IssuerAndSerialNumber (RFC 5652 §10.2.4).
func addIssuerAndSerial(b *cryptobyte.Builder, cert *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(cert.RawIssuer)
		b.AddASN1BigInt(cert.SerialNumber)
	})
}

// ktri: KeyTransRecipientInfo, version 0 (issuerAndSerialNumber).
func ktri(cert *x509.Certificate, pub *rsa.PublicKey, key []byte) ([]byte, error) {
	//lint:ignore SA1019 PKCS #1 v1.5 is what every mail client reads; see the comment at the top of this file.
	ek, err := rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		addIssuerAndSerial(b, cert)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidRSAEncryption)
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(ek)
	})
	return b.Bytes()
}

// eccSharedInfo is ECC-CMS-SharedInfo (RFC 5753 §7.2): the key-wrap
// algorithm (AES wraps take absent parameters), the optional ukm, and the
// KEK length in bits.
func eccSharedInfo(wrapOID asn1.ObjectIdentifier, ukm []byte, kekBits int) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(wrapOID)
		})
		if ukm != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(ukm)
			})
		}
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString([]byte{byte(kekBits >> 24), byte(kekBits >> 16), byte(kekBits >> 8), byte(kekBits)})
		})
	})
	return b.Bytes()
}

// kari: KeyAgreeRecipientInfo (RFC 5652 §6.2.2, RFC 5753 §3.1.1), version 3,
// with a fresh ephemeral key per recipient as originatorKey.
func kari(cert *x509.Certificate, pub *ecdsa.PublicKey, key []byte) ([]byte, error) {
	peer, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	eph, err := peer.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(peer)
	if err != nil {
		return nil, err
	}
	defer clear(z)
	info, err := eccSharedInfo(oidAES256Wrap, nil, 256)
	if err != nil {
		return nil, err
	}
	kek := x963KDF(sha256.New, z, info, 32)
	defer clear(kek)
	wrapped, err := aesKeyWrap(kek, key)
	if err != nil {
		return nil, err
	}
	return kariDER(cert, eph.PublicKey(), wrapped)
}

func kariDER(cert *x509.Certificate, eph *ecdh.PublicKey, wrapped []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	// RecipientInfo CHOICE: kari [1] KeyAgreeRecipientInfo (implicit).
	b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		// originator [0] EXPLICIT OriginatorIdentifierOrKey, alternative
		// originatorKey [1] IMPLICIT OriginatorPublicKey: id-ecPublicKey
		// with absent parameters (the curve is the recipient's), as OpenSSL
		// writes it, and the ephemeral point uncompressed.
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidECPublicKey)
				})
				b.AddASN1BitString(eph.Bytes())
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidECDHSHA256KDF)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256Wrap)
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addIssuerAndSerial(b, cert)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}

// maxRecipientInfo bounds one RecipientInfo: an RSA-16384 ktri with a long
// issuer name is about 3 KB.
const maxRecipientInfo = 16 << 10

// contentInfoHead returns the DER that precedes ri and shared in a complete
// ContentInfo(EnvelopedData) (RFC 5652 §3, §6.1):
//
//	SEQUENCE { OID envelopedData, [0] EXPLICIT SEQUENCE { INTEGER version,
//	  SET { ri }, <shared> } }
//
// version is 0 when ri is a KeyTransRecipientInfo version 0, else 2
// (RFC 5652 §6.1: a kari is version 3, which makes the EnvelopedData 2).
func contentInfoHead(ri []byte, sharedLen int) ([]byte, error) {
	if len(ri) == 0 || len(ri) > maxRecipientInfo {
		return nil, errors.New("smime: recipient info missing or too large")
	}
	s := cryptobyte.String(ri)
	var el cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&el, &tag) || !s.Empty() {
		return nil, errors.New("smime: recipient info is not one DER element")
	}
	version := int64(2)
	switch tag {
	case cbasn1.SEQUENCE:
		var inner cryptobyte.String
		var v int64
		if el.ReadASN1(&inner, cbasn1.SEQUENCE) && inner.ReadASN1Int64WithTag(&v, cbasn1.INTEGER) && v == 0 {
			version = 0
		}
	case cbasn1.Tag(1).Constructed().ContextSpecific(): // kari
	default:
		return nil, errors.New("smime: recipient info is neither a key transport nor a key agreement recipient info")
	}
	versionDER, err := asn1.Marshal(version)
	if err != nil {
		return nil, err
	}
	setLen := 1 + len(derLength(len(ri))) + len(ri)
	edLen := len(versionDER) + setLen + sharedLen
	explicitLen := 1 + len(derLength(edLen)) + edLen
	oid, err := asn1.Marshal(oidEnvelopedData)
	if err != nil {
		return nil, err
	}
	ciLen := len(oid) + 1 + len(derLength(explicitLen)) + explicitLen

	head := make([]byte, 0, 24+len(versionDER)+8)
	head = append(head, 0x30)
	head = append(head, derLength(ciLen)...)
	head = append(head, oid...)
	head = append(head, 0xa0)
	head = append(head, derLength(explicitLen)...)
	head = append(head, 0x30)
	head = append(head, derLength(edLen)...)
	head = append(head, versionDER...)
	head = append(head, 0x31)
	head = append(head, derLength(len(ri))...)
	return head, nil
}

// CopyDER returns one member's copy, a complete DER ContentInfo holding an
// EnvelopedData with only that member's RecipientInfo, as pieces to write
// in order: a short computed head, ri, and shared itself (not copied).
// shared is Envelope.Shared (or the same bytes read back from storage).
func CopyDER(shared, ri []byte) ([][]byte, error) {
	if err := checkShared(shared); err != nil {
		return nil, err
	}
	head, err := contentInfoHead(ri, len(shared))
	if err != nil {
		return nil, err
	}
	return [][]byte{head, ri, shared}, nil
}

// checkShared checks that shared is one DER SEQUENCE (reading only its
// header), so a copy is never assembled around something else.
func checkShared(shared []byte) error {
	s := cryptobyte.String(shared)
	var el cryptobyte.String
	if !s.ReadASN1Element(&el, cbasn1.SEQUENCE) || !s.Empty() {
		return errors.New("smime: the shared part is not one DER EncryptedContentInfo")
	}
	return nil
}
