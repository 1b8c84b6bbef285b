package smime

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
)

// The two primitives ECDH key agreement in CMS needs that Go's standard
// library does not offer, written from their specifications over crypto/aes
// and crypto/sha*: AES Key Wrap (RFC 3394 §2.2, used by RFC 3565 §2.3.2)
// and the ANSI X9.63 key derivation function (SEC 1 v2 §3.6.1, used by
// RFC 5753 §3.1.1). Tests check the key wrap against RFC 3394's vectors; the
// KDF is proven by OpenSSL interop in both directions.

// kwIV is RFC 3394's default initial value (§2.2.3.1).
var kwIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

var errKeyWrap = errors.New("AES key unwrap failed")

// aesKeyWrap wraps key (a multiple of 8 bytes, at least 16) under kek
// (RFC 3394 §2.2.1, index-based form).
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("key to wrap must be a multiple of 8 bytes, at least 16")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	var a [8]byte
	copy(a[:], kwIV[:])
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			block.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:8*i+8], buf[8:])
		}
	}
	copy(out[:8], a[:])
	clear(buf[:])
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value
// (RFC 3394 §2.2.2, §2.2.3).
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	var a [8]byte
	copy(a[:], wrapped[:8])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], out[8*(i-1):8*i])
			block.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(out[8*(i-1):8*i], buf[8:])
		}
	}
	clear(buf[:])
	if subtle.ConstantTimeCompare(a[:], kwIV[:]) != 1 {
		clear(out)
		return nil, errKeyWrap
	}
	return out, nil
}

// x963KDF derives size bytes from the shared secret z and sharedInfo:
// Hash(z || counter || sharedInfo) for counter = 1, 2, ... (32-bit big
// endian), concatenated and truncated.
func x963KDF(newHash func() hash.Hash, z, sharedInfo []byte, size int) []byte {
	out := make([]byte, 0, size+64)
	var ctr [4]byte
	for i := uint32(1); len(out) < size; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		h := newHash()
		h.Write(z)
		h.Write(ctr[:])
		h.Write(sharedInfo)
		out = h.Sum(out)
	}
	clear(out[size:])
	return out[:size]
}
