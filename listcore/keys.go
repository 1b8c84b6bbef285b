package listcore

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// dkimKeyBits: RSA 2048 is what every receiver verifies (RFC 8301 §3.2
// wants at least 1024; Ed25519, RFC 8463, is still not verified everywhere).
const dkimKeyBits = 2048

func newDKIMKey() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, dkimKeyBits)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(k)
}

func parseDKIMKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("list DKIM key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("list DKIM key is not a signing key")
	}
	return s, nil
}

// dkimKeys holds the lists' parsed DKIM keys by the hash of their DER
// form: parsing an RSA key (and precomputing its CRT values) costs more
// than the signature made with it. A new key has a new hash.
var dkimKeys sync.Map // [32]byte -> crypto.Signer

func cachedDKIMKey(der []byte) (crypto.Signer, error) {
	h := sha256.Sum256(der)
	if k, ok := dkimKeys.Load(h); ok {
		return k.(crypto.Signer), nil
	}
	k, err := parseDKIMKey(der)
	if err != nil {
		return nil, err
	}
	dkimKeys.Store(h, k)
	return k, nil
}

// dkimRecord is the TXT record value publishing the public half.
func dkimRecord(der []byte) (string, error) {
	s, err := parseDKIMKey(der)
	if err != nil {
		return "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub), nil
}

// dkimSelector names the key by list and month, so a later key rotation
// can publish a new selector beside the old one.
func dkimSelector(listAddr string, now time.Time) string {
	local, _, _ := strings.Cut(listAddr, "@")
	var b strings.Builder
	for _, r := range strings.ToLower(local) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-") + "-" + now.UTC().Format("200601")
}

func newSecret(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand does not fail
	return b
}
