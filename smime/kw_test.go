package smime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// RFC 3394 §4.1, §4.3, §4.6.
func TestAESKeyWrapVectors(t *testing.T) {
	for _, tc := range []struct{ kek, key, wrapped string }{
		{"000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"},
		{"000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
			"96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	} {
		kek, _ := hex.DecodeString(tc.kek)
		key, _ := hex.DecodeString(tc.key)
		want, _ := hex.DecodeString(tc.wrapped)
		got, err := aesKeyWrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("wrap: got %X, %v", got, err)
		}
		back, err := aesKeyUnwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Fatalf("unwrap: got %X, %v", back, err)
		}
		bad := bytes.Clone(want)
		bad[3] ^= 1
		if _, err := aesKeyUnwrap(kek, bad); err == nil {
			t.Fatal("unwrap accepted a changed wrapped key")
		}
	}
	if _, err := aesKeyUnwrap(make([]byte, 16), make([]byte, 7)); err == nil {
		t.Fatal("short input")
	}
}

// The X9.63 KDF's shape: blocks of Hash(z || counter || info), truncated.
// Its compatibility is proven by OpenSSL decrypting our ECDH copies and us
// decrypting OpenSSL's (SHA-1 and SHA-256 KDFs).
func TestX963KDF(t *testing.T) {
	z := []byte("shared secret")
	info := []byte("info")
	got := x963KDF(sha256.New, z, info, 40)
	h1 := sha256.Sum256(append(append(bytes.Clone(z), 0, 0, 0, 1), info...))
	h2 := sha256.Sum256(append(append(bytes.Clone(z), 0, 0, 0, 2), info...))
	want := append(h1[:], h2[:8]...)
	if !bytes.Equal(got, want) || len(got) != 40 {
		t.Fatalf("got %X", got)
	}
}
