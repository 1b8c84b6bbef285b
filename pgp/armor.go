package pgp

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Armor framing (RFC 4880 §6.2). No armor headers: "Version:" and
// "Comment:" only tell an observer which software the list runs.
const (
	armorBegin = "-----BEGIN PGP MESSAGE-----\r\n"
	armorBlank = "\r\n"
	armorEnd   = "-----END PGP MESSAGE-----\r\n"
)

const (
	// armorLineChars is the longest base64 line RFC 4880 §6.3 allows.
	armorLineChars = 76
	// armorLineBytes is how many binary bytes fill one full line.
	armorLineBytes = armorLineChars / 4 * 3
	// maxKeyPacket bounds a per-copy key packet: an RSA-16384 PKESK is about
	// 2 KB; anything far larger is not a key packet.
	maxKeyPacket = 16 << 10
)

// Armored holds one shared SEIPD packet and armors it for many copies.
//
// A copy's binary content is keyPacket || seipd; base64 works in groups of
// three bytes, so where seipd starts inside a group depends only on
// len(keyPacket) mod 3. For each of the three possibilities the base64 lines
// of the shared remainder are computed once (lazily, the first time a copy
// needs that alignment) and then handed out, read-only, to every copy with
// that alignment. The per-copy work is the base64 of the short key packet
// (plus the up to two seipd bytes that complete its last group) and a CRC
// combination.
//
// Safe for concurrent use.
type Armored struct {
	seipd []byte

	crcOnce  sync.Once
	crcBody  uint32 // CRC-24 register after seipd, started from zero
	crcShift uint32 // x^(8·len(seipd)) mod P

	variants [3]armorVariant
}

// armorVariant is the shared remainder seipd[k:], base64-encoded in CRLF
// terminated lines, for a copy whose head absorbed k bytes of seipd.
type armorVariant struct {
	once  sync.Once
	lines []byte
}

// NewArmored prepares seipd (a complete SEIPD packet, as written by Seal)
// for armoring many copies. Nothing is computed until the first Pieces call,
// and seipd must not be modified afterwards: it is shared, not copied.
func NewArmored(seipd []byte) *Armored {
	return &Armored{seipd: seipd}
}

func (a *Armored) crc() {
	a.crcOnce.Do(func() {
		a.crcBody = crc24Update(0, a.seipd)
		a.crcShift = crc24ZeroShift(uint64(len(a.seipd)))
	})
}

func (a *Armored) variant(k int) []byte {
	v := &a.variants[k]
	v.once.Do(func() { v.lines = base64Lines(a.seipd[k:]) })
	return v.lines
}

// base64Lines encodes src as base64 lines of armorLineChars characters (the
// last one possibly shorter and padded), each terminated by CRLF.
func base64Lines(src []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	full := len(src) / armorLineBytes
	rest := len(src) % armorLineBytes
	n := full * (armorLineChars + 2)
	if rest > 0 {
		n += base64.StdEncoding.EncodedLen(rest) + 2
	}
	dst := make([]byte, n)
	d := 0
	for i := 0; i < full; i++ {
		encodeLine(dst[d:d+armorLineChars+2], src[i*armorLineBytes:(i+1)*armorLineBytes])
		d += armorLineChars + 2
	}
	if rest > 0 {
		m := base64.StdEncoding.EncodedLen(rest)
		base64.StdEncoding.Encode(dst[d:d+m], src[full*armorLineBytes:])
		d += m
		dst[d], dst[d+1] = '\r', '\n'
	}
	return dst
}

// Pieces returns the armored copy whose binary content is keyPacket || seipd,
// as byte slices to be written in order:
//
//	"-----BEGIN PGP MESSAGE-----\r\n", "\r\n",
//	the base64 lines of the head (keyPacket plus the 0–2 bytes of seipd that
//	complete its last 3-byte group),
//	the base64 lines of the rest of seipd (shared, read-only),
//	"=" + CRC-24 + "\r\n", "-----END PGP MESSAGE-----\r\n".
//
// Lines are at most 76 characters; the last head line is usually shorter,
// so one short line sits in the middle of the armor. Every line holds whole
// 4-character groups, so even a decoder that decodes line by line gets the
// same bytes; GnuPG 2.2, go-crypto and Thunderbird accept it (tested with
// gpg). The big slice is shared between copies: callers must not modify it.
func (a *Armored) Pieces(keyPacket []byte) ([][]byte, error) {
	if len(keyPacket) == 0 {
		return nil, errors.New("pgp: empty key packet")
	}
	if len(keyPacket) > maxKeyPacket {
		return nil, fmt.Errorf("pgp: key packet of %d bytes is too large", len(keyPacket))
	}
	if p, err := nextPacket(keyPacket, 0); err != nil || p.tag != tagPKESK || p.end != len(keyPacket) {
		return nil, errors.New("pgp: key packet is not exactly one public-key encrypted session key packet")
	}
	a.crc()

	k := (3 - len(keyPacket)%3) % 3
	if k > len(a.seipd) {
		k = len(a.seipd)
	}
	head := make([]byte, 0, len(keyPacket)+k)
	head = append(head, keyPacket...)
	head = append(head, a.seipd[:k]...)
	headLines := base64Lines(head)

	crc := crc24Combine(crc24(keyPacket), a.crcBody, uint64(len(a.seipd)))
	crcLine := make([]byte, 7)
	crcLine[0] = '='
	base64.StdEncoding.Encode(crcLine[1:5], []byte{byte(crc >> 16), byte(crc >> 8), byte(crc)})
	crcLine[5], crcLine[6] = '\r', '\n'

	// The framing lines are fresh per call so that no caller can alter
	// another copy by writing into a slice it was handed.
	pieces := [][]byte{[]byte(armorBegin), []byte(armorBlank), headLines}
	if rest := a.variant(k); len(rest) > 0 {
		pieces = append(pieces, rest)
	}
	return append(pieces, crcLine, []byte(armorEnd)), nil
}

// b64Pairs[v] is the two base64 characters of the 12-bit value v, packed
// little-endian. Encoding 12 bits per lookup, 6 bytes per step, makes the
// shared armor pass several times faster than encoding/base64 (the armor
// is the shared path's main cost above the lower bound). Computed once,
// never written again.
var b64Pairs = makeB64Pairs()

func makeB64Pairs() *[4096]uint16 {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	t := new([4096]uint16)
	for v := range t {
		t[v] = uint16(alphabet[v>>6]) | uint16(alphabet[v&63])<<8
	}
	return t
}

// encodeLine writes one full armor line: the 76 base64 characters of the
// 57 bytes src, then CRLF, into dst (78 bytes).
func encodeLine(dst, src []byte) {
	d := (*[armorLineChars + 2]byte)(dst)
	s := (*[armorLineBytes]byte)(src)
	t := b64Pairs
	// Nine steps of 6 bytes (48 bits -> 8 characters), loading 8 bytes
	// at a time: the last load, at 48, ends at 56 < 57.
	for i, j := 0, 0; i < 54; i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(s[i:]) >> 16
		binary.LittleEndian.PutUint64(d[j:], uint64(t[v>>36&0xfff])|uint64(t[v>>24&0xfff])<<16|
			uint64(t[v>>12&0xfff])<<32|uint64(t[v&0xfff])<<48)
	}
	v := uint(s[54])<<16 | uint(s[55])<<8 | uint(s[56])
	binary.LittleEndian.PutUint32(d[72:], uint32(t[v>>12])|uint32(t[v&0xfff])<<16)
	d[76], d[77] = '\r', '\n'
}

// ArmorSignature armors binary signature packets (RFC 4880 §6.2) for the
// signature part of a multipart/signed entity.
func ArmorSignature(sig []byte) []byte {
	crc := crc24(sig)
	out := make([]byte, 0, len(sig)*4/3+len(sig)/36+96)
	out = append(out, "-----BEGIN PGP SIGNATURE-----\r\n\r\n"...)
	out = append(out, base64Lines(sig)...)
	out = append(out, '=')
	out = append(out, base64.StdEncoding.EncodeToString([]byte{byte(crc >> 16), byte(crc >> 8), byte(crc)})...)
	out = append(out, "\r\n-----END PGP SIGNATURE-----\r\n"...)
	return out
}
