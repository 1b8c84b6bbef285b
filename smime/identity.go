package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// DefaultListKeyBits is the size of a generated list key. RSA, not ECDSA:
// every client encrypts to RSA (Outlook, Apple Mail and Thunderbird alike),
// while ECDH S/MIME is read by fewer of them. 3072 bits is NIST's 128-bit
// security level (SP 800-57), which matches AES-128 and SHA-256.
const DefaultListKeyBits = 3072

// DefaultListCertValidity is how long a generated list certificate is
// valid. Clients warn about expired certificates and members must learn a
// new one, so not too short; the list can renew it at any time.
const DefaultListCertValidity = 3 * 365 * 24 * time.Hour

// Identity is the list's S/MIME certificate and private key: it signs every
// copy and decrypts what members encrypt to the list. Chain holds any
// intermediate CA certificates of an operator-provided certificate; they are
// included in signatures so clients can build the path.
type Identity struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

// GenerateIdentity creates a self-issued certificate for the list address
// and a fresh RSA key of DefaultListKeyBits: subject CN name (the address
// if empty), subjectAltName rfc822Name address, key usage digitalSignature
// and keyEncipherment, extended key usage emailProtection, valid from an
// hour before now (clock skew between the list and members) for
// DefaultListCertValidity. It is its own issuer, not a CA: clients show it
// as untrusted until the member trusts it once, exactly as for a member's
// self-signed certificate.
func GenerateIdentity(address, name string, now time.Time) (*Identity, error) {
	return generateIdentity(address, name, now, DefaultListKeyBits)
}

func generateIdentity(address, name string, now time.Time, bits int) (*Identity, error) {
	if !strings.Contains(address, "@") {
		return nil, fmt.Errorf("smime: %q is not a list address", address)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = address
	}
	ski := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)), // positive, non-zero (RFC 5280 §4.1.2.2)
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              now.Add(DefaultListCertValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses:        []string{address},
		BasicConstraintsValid: true,
		// RFC 5280 §4.2.1.2 (1): SHA-1 of the subjectPublicKey bits, so a
		// client may name the list by subject key identifier.
		SubjectKeyId: ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{Cert: cert, Key: key}, nil
}

// LoadIdentity reads the list's certificate (PEM: the list's certificate
// first, then any intermediates) and its private key (PEM: PKCS #8,
// PKCS #1 or SEC 1, unencrypted), for an operator who uses a certificate
// from a CA instead of the self-issued one. It refuses a key that does not
// match the certificate, and a certificate that would not work as the
// list's: not valid at now, a weak key, key usage without digitalSignature
// and encryption, or no rfc822Name/emailAddress equal to address.
func LoadIdentity(certPEM, keyPEM []byte, address string, now time.Time) (*Identity, error) {
	id, err := ParseIdentity(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkCert(id.Cert, address, now, true); err != nil {
		return nil, fmt.Errorf("smime: list certificate: %w", err)
	}
	return id, nil
}

// ParseIdentity reads a stored identity, checked when it was stored (by
// LoadIdentity or made by GenerateIdentity): the certificate and its key
// must match, nothing else is checked (an expired list certificate still
// decrypts what was sent to it).
func ParseIdentity(certPEM, keyPEM []byte) (*Identity, error) {
	var certs []*x509.Certificate
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("smime: list certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("smime: the certificate file holds no PEM CERTIFICATE block")
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, errors.New("smime: the private key does not belong to the list certificate (the first certificate in the file)")
	}
	return &Identity{Cert: certs[0], Chain: certs[1:], Key: key}, nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("smime: the key file holds no PEM private key")
		}
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") { // RFC 1421 §4.6.1.1
			return nil, errors.New("smime: the private key is encrypted; the list needs it without a passphrase (the data directory is private to the service)")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("smime: the private key is encrypted; the list needs it without a passphrase (the data directory is private to the service)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("smime: private key: %v", err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("smime: private key of type %T; the list needs RSA or ECDSA", k)
	}
}

// CertPEM returns the list's certificate, then any intermediates, as PEM:
// what `isaclist list cert` prints and members import.
func (id *Identity) CertPEM() []byte {
	var b bytes.Buffer
	for _, c := range append([]*x509.Certificate{id.Cert}, id.Chain...) {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// KeyPEM returns the private key as an unencrypted PKCS #8 PEM block, for
// storing it in the list's database.
func (id *Identity) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
