package pgp

// CRC-24 as used by the ASCII armor checksum (RFC 4880 §6.1): generator
// 0x1864CFB, initial value 0xB704CE, most significant bit first, no final
// XOR. GnuPG 2.2 insists on a correct checksum line when one is present, and
// older versions want it present, so every armored copy carries one.
//
// The CRC is linear over GF(2): with the register seen as a polynomial r(x)
// of degree < 24, feeding one zero byte maps r to r·x^8 mod P. Hence
//
//	crc_I(A || B) = crc_I(A)·x^(8·|B|) mod P  ⊕  crc_0(B)
//
// where crc_I starts from the initial value and crc_0 from zero. That is
// what zlib's crc32_combine computes with its zero-extension matrix; here
// the "matrix" is multiplication by x^(8·|B|) mod P, which is a constant per
// shared body. Armored uses it so each copy's checksum costs a pass over the
// short key packet only, never over the shared body.

const (
	crc24Init = 0xB704CE
	crc24Poly = 0x1864CFB
	crc24Mask = 0xFFFFFF
)

// crc24Tables[k][i] = i·x^(24+8k) mod P, for slicing-by-16. Computed once
// at start-up and never written again.
var crc24Tables = makeCRC24Tables()

func makeCRC24Tables() *[16][256]uint32 {
	t := new([16][256]uint32)
	for i := 0; i < 256; i++ {
		r := uint32(i) << 16
		for j := 0; j < 8; j++ {
			r <<= 1
			if r&0x1000000 != 0 {
				r ^= crc24Poly
			}
		}
		t[0][i] = r & crc24Mask
	}
	for k := 1; k < 16; k++ {
		for i := 0; i < 256; i++ {
			r := t[k-1][i]
			// multiply by x^8: feed a zero byte
			t[k][i] = (r<<8)&crc24Mask ^ t[0][r>>16]
		}
	}
	return t
}

// crc24Update feeds d into the CRC register crc (slicing-by-16, then by-8,
// then byte by byte).
func crc24Update(crc uint32, d []byte) uint32 {
	t := crc24Tables
	for len(d) >= 16 {
		c0 := d[0] ^ byte(crc>>16)
		c1 := d[1] ^ byte(crc>>8)
		c2 := d[2] ^ byte(crc)
		crc = t[15][c0] ^ t[14][c1] ^ t[13][c2] ^ t[12][d[3]] ^
			t[11][d[4]] ^ t[10][d[5]] ^ t[9][d[6]] ^ t[8][d[7]] ^
			t[7][d[8]] ^ t[6][d[9]] ^ t[5][d[10]] ^ t[4][d[11]] ^
			t[3][d[12]] ^ t[2][d[13]] ^ t[1][d[14]] ^ t[0][d[15]]
		d = d[16:]
	}
	for len(d) >= 8 {
		c0 := d[0] ^ byte(crc>>16)
		c1 := d[1] ^ byte(crc>>8)
		c2 := d[2] ^ byte(crc)
		crc = t[7][c0] ^ t[6][c1] ^ t[5][c2] ^ t[4][d[3]] ^
			t[3][d[4]] ^ t[2][d[5]] ^ t[1][d[6]] ^ t[0][d[7]]
		d = d[8:]
	}
	for _, b := range d {
		crc = (crc<<8)&crc24Mask ^ t[0][byte(crc>>16)^b]
	}
	return crc
}

// crc24 is the armor checksum of d.
func crc24(d []byte) uint32 { return crc24Update(crc24Init, d) }

// gf24Mul returns a·b mod P for polynomials of degree < 24.
func gf24Mul(a, b uint32) uint32 {
	var r uint32
	for i := 23; i >= 0; i-- {
		r <<= 1
		if r&0x1000000 != 0 {
			r ^= crc24Poly
		}
		if b&(1<<uint(i)) != 0 {
			r ^= a
		}
	}
	return r & crc24Mask
}

// crc24ZeroShift returns x^(8n) mod P: the operator that appends n zero
// bytes to a CRC register (square-and-multiply, O(log n)).
func crc24ZeroShift(n uint64) uint32 {
	result := uint32(1)
	base := uint32(1 << 8) // x^8
	for n > 0 {
		if n&1 != 0 {
			result = gf24Mul(result, base)
		}
		base = gf24Mul(base, base)
		n >>= 1
	}
	return result
}

// crc24Combine returns the CRC-24 of A||B given crcA (the register after A,
// from any start value), crc0B (the register after B started from zero) and
// the length of B.
func crc24Combine(crcA, crc0B uint32, lenB uint64) uint32 {
	return gf24Mul(crcA, crc24ZeroShift(lenB)) ^ crc0B
}
