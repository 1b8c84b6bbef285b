package pgp

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// sealCipher is AES-256: every OpenPGP implementation the list serves has
// it, and the session key is shared by all members' copies, so it gets the
// strongest cipher on offer.
const sealCipher = packet.CipherAES256

// sealChunk is how much plaintext Seal hands to the OpenPGP writers at a
// time. Each writer layer buffers at most about two chunks, so Seal's
// memory use does not depend on the body size.
const sealChunk = 64 << 10

// SessionKey is the symmetric key one post was sealed under. KeyPacket
// wraps it for each member; Wipe clears it once the copies are made.
type SessionKey struct {
	mu  sync.Mutex
	key []byte
}

// sealConfig is the go-crypto configuration for the list's messages.
// Compression stays off (DefaultCompressionAlgo zero): it costs CPU on every
// post, and compressing before encrypting lets the ciphertext length reveal
// how well attacker-influenced text compresses together with the secret
// text (CRIME-style); members' mail is small enough anyway. AEAD stays off:
// GnuPG 2.2 reads only SEIPD v1 (with MDC). SHA-256 signs: every client
// verifies it and it is the fastest hash with SHA extensions.
func sealConfig(now time.Time) *packet.Config {
	return &packet.Config{
		Time:          func() time.Time { return now },
		DefaultHash:   crypto.SHA256,
		DefaultCipher: sealCipher,
	}
}

// Seal signs and encrypts one post for every member at once. It reads the
// plaintext (a complete MIME entity with CRLF line endings) from r in
// chunks, never holding the whole body, and writes to w exactly one SEIPD
// packet (v1, with MDC, AES-256) that contains: a one-pass signature packet,
// the binary literal data, and the list's signature (type binary, so the
// signed bytes are exactly the MIME entity). The signature is inside the
// encryption so that only members learn that the list sent this post.
//
// The returned SessionKey makes the per-member key packets (KeyPacket).
// Nothing identifying any recipient is in the SEIPD packet.
func Seal(w io.Writer, r io.Reader, list *ListKey, now time.Time) (*SessionKey, error) {
	if list == nil {
		return nil, errors.New("pgp: no list key")
	}
	cfg := sealConfig(now)
	key := make([]byte, sealCipher.KeySize())
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, err
	}
	sk := &SessionKey{key: key}
	fail := func(err error) (*SessionKey, error) {
		sk.Wipe()
		return nil, fmt.Errorf("pgp: sealing: %w", err)
	}
	enc, err := packet.SerializeSymmetricallyEncrypted(w, sealCipher, false, packet.CipherSuite{}, key, cfg)
	if err != nil {
		return fail(err)
	}
	// openpgp.Sign writes one-pass signature, literal data and signature
	// into enc, without closing it; no compression layer in between.
	pt, err := openpgp.Sign(enc, list.entity, &openpgp.FileHints{IsBinary: true}, cfg)
	if err != nil {
		return fail(err)
	}
	// A plain loop, not io.Copy: io.Copy would let a *bytes.Reader write
	// its whole body in one call, and every writer layer would then buffer
	// a full copy of it.
	buf := make([]byte, sealChunk)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := pt.Write(buf[:n]); err != nil {
				return fail(err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if err := pt.Close(); err != nil {
		return fail(err)
	}
	if err := enc.Close(); err != nil {
		return fail(err)
	}
	return sk, nil
}

// KeyPacket returns one PKESK packet (v3) that gives the session key to the
// recipient's current valid encryption subkey, and to nothing else. A copy
// is KeyPacket || the SEIPD packet Seal wrote.
func (s *SessionKey) KeyPacket(recipient *PublicKey, now time.Time) ([]byte, error) {
	if recipient == nil {
		return nil, errors.New("pgp: no recipient key")
	}
	k, ok := recipient.entity.EncryptionKey(skewedNow(recipient.entity, now))
	if !ok {
		return nil, fmt.Errorf("pgp: key %s has no valid encryption key (expired, revoked or sign-only)", recipient.fpr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return nil, errors.New("pgp: session key already wiped")
	}
	var buf bytes.Buffer
	if err := packet.SerializeEncryptedKeyAEAD(&buf, k.PublicKey, sealCipher, false, s.key, sealConfig(now)); err != nil {
		return nil, fmt.Errorf("pgp: encrypting the session key to %s: %w", recipient.fpr, err)
	}
	return buf.Bytes(), nil
}

// Wipe overwrites the session key; KeyPacket fails afterwards. Call it as
// soon as every member's key packet is made: the key packets and the SEIPD
// packet are what is kept in the queue, never the session key.
func (s *SessionKey) Wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.key)
	s.key = nil
}
