// Package smime is the S/MIME (RFC 8551) cryptography of the list: members'
// certificates, the list's own certificate and key, encrypted and signed
// copies out, encrypted and signed posts in. It knows nothing of the mail
// pipeline; callers hand it MIME entities and certificates.
//
// # Certificates
//
// CheckMemberCert decides whether a member's certificate (PEM or DER) can be
// registered: valid now, RSA of at least 2048 bits or ECDSA P-256/P-384,
// usable for encryption, for e-mail, and naming the member's address. Any
// issuer is accepted: registering it is the trust decision, as for an
// OpenPGP key. Each refusal is a *CertError that says which check failed and
// what to do. GenerateIdentity makes the list's self-issued certificate (RSA
// 3072); LoadIdentity takes an operator's certificate and key instead.
//
// # Encrypt once, one RecipientInfo per copy
//
// The central design is the one the OpenPGP side has (issue 13, point 3): a
// post is signed by the list (Identity.SignEntity) and encrypted once
// (Encrypt) under a fresh AES-256 key. The Envelope's Shared part, the
// EncryptedContentInfo holding the ciphertext, is stored once per post;
// Envelope.RecipientInfo makes each member's KeyTransRecipientInfo (RSA) or
// KeyAgreeRecipientInfo (ECDH), a few hundred bytes, and Envelope.Wipe then
// forgets the key. A member's copy is a complete ContentInfo(EnvelopedData)
// holding only that member's RecipientInfo and the shared part: CopyDER
// returns it as pieces ([computed head, RecipientInfo, shared]) without
// copying the shared bytes, and Copies returns its base64 body (76-column
// CRLF lines) with the shared part encoded once per 3-byte alignment, not
// once per member. WriteBase64 streams any pieces as base64. A copy thus
// names only its own recipient, and the cost of a fan-out does not grow
// with members × post size (BenchmarkFanout50).
//
// # Posts from members
//
// Decrypt and DecryptEntity decrypt in memory, bounded by the caller's
// plaintext limit, what a member encrypted to the list; an *ErrNotForList
// says when it was encrypted to other certificates. Verify checks a
// detached (multipart/signed) or opaque (signed-data) signature against the
// author's registered certificate only; a signature by any other
// certificate is an *ErrNotAuthor, even if that certificate is in the
// message. KindOf tells which of these an entity is. Errors never quote
// decrypted content; malformed input is an error, never a panic (inputs are
// bounded, BER nesting and element counts are limited, and exported entry
// points recover from a panic in the CMS library). FuzzOpen fuzzes all of it.
//
// # Algorithms
//
// Sent: AES-256-CBC EnvelopedData; RSA keys by RSAES-PKCS1-v1_5; ECDSA
// P-256/P-384 keys by ephemeral-static ECDH, dhSinglePass-stdDH-sha256kdf-
// scheme with id-aes256-wrap (RFC 5753); signatures SHA-256 with RSA
// PKCS #1 v1.5 (or ECDSA for an EC list key) with contentType,
// messageDigest, signingTime and SMIMECapabilities (AES-256-GCM,
// AES-128-GCM, AES-256-CBC, AES-192-CBC, AES-128-CBC). encrypt.go says why
// CBC and PKCS #1 v1.5 rather than GCM and OAEP: every client reads them.
//
// Read: EnvelopedData and AuthEnvelopedData (RFC 5083); AES-128/192/256 in
// CBC and GCM (RFC 3565, RFC 5084); RSA key transport with PKCS #1 v1.5 or
// RSAES-OAEP (SHA-1/224/256/384/512, MGF1, with or without a label); ECDH
// key agreement (SHA-1/224/256/384/512 KDF, AES-128/192/256 key wrap) when
// the list's key is ECDSA; recipients named by issuer and serial or subject
// key identifier; DER or BER (indefinite lengths, chunked strings, as NSS
// and gpgsm write them). Signatures: whatever github.com/smallstep/pkcs7
// verifies (RSA PKCS #1 v1.5 and ECDSA with SHA-256/384/512; SHA-1 is
// refused) with the signer named by issuer and serial.
//
// # CMS library: what the candidates offer, and what this package uses
//
//   - github.com/smallstep/pkcs7 v0.2.3 (maintained, the CMS of step-ca):
//     SignedData signing and verification, attached and detached, BER input;
//     EnvelopedData decryption with RSA PKCS #1 v1.5 and OAEP, AES-128/256-CBC
//     (its AES-GCM is a non-standard GCM inside EnvelopedData); encryption to
//     all recipients at once. No AuthEnvelopedData ("unimplemented content
//     type"), no ECDH: an EnvelopedData holding any KeyAgreeRecipientInfo
//     fails to parse, so a post whose sender also encrypted to their own EC
//     certificate could not be read. No AES-192, no signer named by subject
//     key identifier, no way to make one RecipientInfo for shared content.
//   - go.mozilla.org/pkcs7 v0.10.0: the archived ancestor of the above, with
//     fewer fixes (RSA-OAEP decryption only in forks).
//   - github.com/github/smimesign/ietf-cms (module v0.2.0): SignedData only
//     (sign, verify through an x509 chain, detached); no encryption.
//   - github.com/digitorus/pkcs7: revived in 2026 (ML-KEM, ML-DSA), but its
//     current versions need Go 1.27 and, by its README, implement neither
//     AuthEnvelopedData nor ECDH recipients.
//   - github.com/InfiniteLoopSpace/go_S-MIME: AuthEnvelopedData and OAEP,
//     but unmaintained and not served by the Go module proxy.
//
// So github.com/smallstep/pkcs7 makes and checks the signatures (sign.go,
// verify.go; this package only decides that the author's registered
// certificate is the one a signature is checked with). Everything enveloped,
// both ways, is built and read here with the standard library and
// golang.org/x/crypto/cryptobyte (Go's ASN.1 builder and parser, which
// computes every length), not with bytes written by hand: the encrypt-once
// economy, ECDH, AuthEnvelopedData and BER input are what no candidate
// offers. Two primitives Go lacks are written from their specifications:
// AES key wrap (RFC 3394, checked against its test vectors) and the X9.63
// KDF (checked by OpenSSL interop both ways). The BER-to-DER conversion
// (ber.go) reads only identifiers and lengths.
//
// Interop is tested against openssl cms and gpgsm (openssl_test.go,
// gpgsm_test.go) in both directions.
//
// # Known limits
//
// A signature whose SignerInfo names the signer by subject key identifier
// is refused with a sentence (the CMS library cannot read it; Outlook,
// Apple Mail and Thunderbird use issuer and serial). A member who signs with
// a separate signing certificate needs that certificate to be the one
// Verify is given. The signingTime the list puts in its signatures comes
// from the system clock (the library takes no clock).
//
// Identity, Envelope (until Wipe) and Copies are safe for concurrent use by
// several goroutines; the package holds no mutable package-level state.
package smime
