// Package pgp is everything OpenPGP the list needs: its own key pair,
// members' public keys, encrypted copies out and encrypted posts in.
//
// The central design (issue 3, point 4): a post is signed by the list and
// encrypted once, under one fresh session key (Seal). Each member's copy is
// then only [a PKESK packet for that member's key] followed by [the one
// shared SEIPD packet] (SessionKey.KeyPacket), so each copy names only its
// own recipient and the cost of a fan-out does not grow with members × body
// size. Copies travel ASCII-armored (PGP/MIME, RFC 3156); armoring each copy
// separately would re-encode the whole body per member, so Armored encodes
// the shared part once per byte alignment and combines the armor checksum
// (CRC-24) arithmetically (Armored.Pieces).
//
// Everything written here is readable by GnuPG 2.2 and Thunderbird: v4 keys,
// SEIPD v1 with MDC (no AEAD), AES-256, one-pass signed binary literal data.
//
// The package holds no mutable package-level state; the only package-level
// variables are constant lookup tables.
package pgp
