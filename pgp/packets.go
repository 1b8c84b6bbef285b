package pgp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// rawPacket locates one OpenPGP packet inside a byte slice. We split packet
// sequences ourselves (rather than only through go-crypto's streaming
// reader) because the caller needs some packets byte-exact (a member's
// signature is re-emitted as a detached signature), and because it lets us
// bound the number of packets before anything expensive happens.
type rawPacket struct {
	tag        uint8
	start, end int  // the whole packet, header included: b[start:end]
	partial    bool // body uses partial lengths (RFC 4880 §4.2.2.4)
}

// errTruncated is returned when a packet header or body runs past the data.
var errTruncated = errors.New("OpenPGP data is truncated")

// errTooManyPackets is returned when a sequence has more packets than
// allowed.
var errTooManyPackets = errors.New("too many OpenPGP packets")

// splitPackets cuts b into its top-level packets, refusing more than max of
// them. It never looks inside packet bodies.
func splitPackets(b []byte, max int) ([]rawPacket, error) {
	var out []rawPacket
	off := 0
	for off < len(b) {
		if len(out) >= max {
			return nil, fmt.Errorf("%w: more than %d", errTooManyPackets, max)
		}
		p, err := nextPacket(b, off)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		off = p.end
	}
	return out, nil
}

// nextPacket parses the packet header at b[off] and finds where the packet
// ends (following partial-length chunks to their final chunk).
func nextPacket(b []byte, off int) (rawPacket, error) {
	p := rawPacket{start: off}
	if off >= len(b) {
		return p, errTruncated
	}
	h := b[off]
	if h&0x80 == 0 {
		return p, fmt.Errorf("not OpenPGP data (byte %#02x at offset %d is not a packet header)", h, off)
	}
	pos := off + 1
	if h&0x40 == 0 {
		// Old format: tag in bits 5..2, length type in bits 1..0.
		p.tag = (h >> 2) & 0x0f
		var n int
		switch h & 3 {
		case 0:
			n = 1
		case 1:
			n = 2
		case 2:
			n = 4
		case 3:
			// Indeterminate length: the packet runs to the end of the data.
			p.end = len(b)
			return p, nil
		}
		if len(b)-pos < n {
			return p, errTruncated
		}
		var l uint64
		for i := 0; i < n; i++ {
			l = l<<8 | uint64(b[pos+i])
		}
		pos += n
		if l > uint64(len(b)-pos) {
			return p, errTruncated
		}
		p.end = pos + int(l)
		return p, nil
	}
	// New format.
	p.tag = h & 0x3f
	for {
		l, partial, n, err := newFormatLength(b[pos:])
		if err != nil {
			return p, err
		}
		pos += n
		if l > uint64(len(b)-pos) {
			return p, errTruncated
		}
		pos += int(l)
		if !partial {
			p.end = pos
			return p, nil
		}
		p.partial = true
	}
}

// packetBody returns the body of one complete packet raw that does not use
// partial lengths (nil if it does or is malformed).
func packetBody(raw []byte) []byte {
	if len(raw) < 2 || raw[0]&0x80 == 0 {
		return nil
	}
	if raw[0]&0x40 == 0 {
		n := [4]int{1, 2, 4, 0}[raw[0]&3]
		if n == 0 || len(raw) < 1+n {
			return nil
		}
		return raw[1+n:]
	}
	_, partial, n, err := newFormatLength(raw[1:])
	if err != nil || partial {
		return nil
	}
	return raw[1+n:]
}

// newFormatLength decodes one new-format length (RFC 4880 §4.2.2): the body
// length, whether it is a partial chunk, and how many octets it used.
func newFormatLength(b []byte) (l uint64, partial bool, n int, err error) {
	if len(b) < 1 {
		return 0, false, 0, errTruncated
	}
	switch c := b[0]; {
	case c < 192:
		return uint64(c), false, 1, nil
	case c < 224:
		if len(b) < 2 {
			return 0, false, 0, errTruncated
		}
		return (uint64(c)-192)<<8 + uint64(b[1]) + 192, false, 2, nil
	case c < 255:
		return 1 << (c & 0x1f), true, 1, nil
	default:
		if len(b) < 5 {
			return 0, false, 0, errTruncated
		}
		return uint64(binary.BigEndian.Uint32(b[1:5])), false, 5, nil
	}
}

// OpenPGP packet tags used here (RFC 4880 §4.3, RFC 9580 §5).
const (
	tagPKESK      = 1
	tagSignature  = 2
	tagSKESK      = 3
	tagOPS        = 4
	tagSecretKey  = 5
	tagPublicKey  = 6
	tagSecretSub  = 7
	tagCompressed = 8
	tagSED        = 9
	tagMarker     = 10
	tagLiteral    = 11
	tagSEIPD      = 18
	tagAEAD       = 20
	tagPadding    = 21
)
