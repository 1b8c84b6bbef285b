package smime

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CMS from mail clients is BER, not DER: Thunderbird (NSS) and gpgsm stream
// it with indefinite lengths and cut the content into chunks of a
// constructed OCTET STRING. encoding/asn1 reads DER only, so input is first
// rewritten into definite-length form (X.690 §8.1.3.6 → §10.1) with
// constructed universal OCTET STRINGs joined (§8.7.3 → §10.2).
// cryptobyte writes the output and computes every length; this file only
// reads BER headers, with bounds on depth and element count.

const (
	// maxBERDepth bounds nesting: CMS is about ten levels deep (ContentInfo,
	// EnvelopedData, RecipientInfo, rid, Name, RDN, attribute, ...); a
	// certificate inside a SignedData adds some more.
	maxBERDepth = 40
	// maxBERElements bounds the number of elements read, so input made of
	// millions of tiny elements is refused early.
	maxBERElements = 1 << 20
)

var errBER = errors.New("malformed ASN.1 (BER)")

// berHeader is one element's identifier and length octets.
type berHeader struct {
	class, tag  int
	constructed bool
	indefinite  bool
	length      int // content length when definite
	hdrLen      int
}

func readBERHeader(b []byte) (berHeader, error) {
	h, err := readBERHeaderPrefix(b)
	if err == nil && !h.indefinite && h.length > len(b)-h.hdrLen {
		return h, errBER
	}
	return h, err
}

// readBERHeaderPrefix reads identifier and length octets without checking
// that the contents follow (for a look at the start of a message).
func readBERHeaderPrefix(b []byte) (h berHeader, err error) {
	if len(b) < 2 {
		return h, errBER
	}
	i := 0
	id := b[i]
	i++
	h.class = int(id >> 6)
	h.constructed = id&0x20 != 0
	h.tag = int(id & 0x1f)
	if h.tag == 0x1f {
		// High tag number form (§8.1.2.4): base-128, at most 4 octets here.
		h.tag = 0
		for n := 0; ; n++ {
			if i >= len(b) || n >= 4 {
				return h, errBER
			}
			c := b[i]
			i++
			h.tag = h.tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
		if h.tag < 0x1f {
			return h, errBER
		}
	}
	if i >= len(b) {
		return h, errBER
	}
	l := b[i]
	i++
	switch {
	case l < 0x80:
		h.length = int(l)
	case l == 0x80:
		if !h.constructed {
			return h, errBER // §8.1.3.2: indefinite form only for constructed
		}
		h.indefinite = true
	default:
		n := int(l & 0x7f)
		if n > 4 || i+n > len(b) {
			return h, errBER
		}
		for k := 0; k < n; k++ {
			h.length = h.length<<8 | int(b[i+k])
		}
		i += n
		if h.length < 0 || h.length > MaxCMSInput {
			return h, errBER
		}
	}
	h.hdrLen = i
	return h, nil
}

// berToDER returns in rewritten as DER lengths; trailing data is an error.
// A DER input comes back equal to itself.
func berToDER(in []byte) ([]byte, error) {
	c := &berConv{}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(in)))
	n, err := c.element(b, in, 0)
	if err != nil {
		return nil, err
	}
	if n != len(in) {
		return nil, fmt.Errorf("%w: %d bytes after the end", errBER, len(in)-n)
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBER, err)
	}
	return out, nil
}

type berConv struct{ elements int }

// element converts the element at the start of in into b and returns how
// many input bytes it took.
func (c *berConv) element(b *cryptobyte.Builder, in []byte, depth int) (int, error) {
	if depth > maxBERDepth {
		return 0, fmt.Errorf("%w: nested too deeply", errBER)
	}
	c.elements++
	if c.elements > maxBERElements {
		return 0, fmt.Errorf("%w: too many elements", errBER)
	}
	h, err := readBERHeader(in)
	if err != nil {
		return 0, err
	}
	if h.tag == 0 && h.class == 0 {
		return 0, fmt.Errorf("%w: unexpected end-of-contents", errBER)
	}
	body := in[h.hdrLen:]
	if !h.indefinite {
		body = body[:h.length]
	}
	if !h.constructed {
		c.addHeader(b, h, false, func(b *cryptobyte.Builder) { b.AddBytes(body) })
		return h.hdrLen + h.length, nil
	}
	// A constructed OCTET STRING (or BIT STRING) becomes one primitive value.
	if h.class == 0 && (h.tag == 4 || h.tag == 3) {
		var joined []byte
		n, err := c.joinChunks(&joined, body, h.indefinite, h.tag, depth+1, true)
		if err != nil {
			return 0, err
		}
		c.addHeader(b, h, false, func(b *cryptobyte.Builder) { b.AddBytes(joined) })
		return h.hdrLen + n, nil
	}
	var used int
	var inner error
	c.addHeader(b, h, true, func(b *cryptobyte.Builder) {
		used, inner = c.children(b, body, h.indefinite, depth+1)
	})
	if inner != nil {
		return 0, inner
	}
	return h.hdrLen + used, nil
}

// children converts the contents of a constructed element: up to the end
// of body (definite) or up to the end-of-contents octets (indefinite).
func (c *berConv) children(b *cryptobyte.Builder, body []byte, indefinite bool, depth int) (int, error) {
	off := 0
	for {
		if indefinite {
			if len(body)-off >= 2 && body[off] == 0 && body[off+1] == 0 {
				return off + 2, nil
			}
			if off >= len(body) {
				return 0, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
		} else if off == len(body) {
			return off, nil
		}
		n, err := c.element(b, body[off:], depth)
		if err != nil {
			return 0, err
		}
		off += n
	}
}

// joinChunks appends the values of the chunks of a constructed string of
// universal tag to out (§8.7.3.2: chunks are strings of the same type,
// themselves possibly constructed). A BIT STRING keeps its first chunk's
// unused-bits octet; any other chunk must have none.
func (c *berConv) joinChunks(out *[]byte, body []byte, indefinite bool, tag, depth int, first bool) (int, error) {
	if depth > maxBERDepth {
		return 0, fmt.Errorf("%w: nested too deeply", errBER)
	}
	off := 0
	for {
		if indefinite {
			if len(body)-off >= 2 && body[off] == 0 && body[off+1] == 0 {
				return off + 2, nil
			}
			if off >= len(body) {
				return 0, fmt.Errorf("%w: missing end-of-contents", errBER)
			}
		} else if off == len(body) {
			return off, nil
		}
		c.elements++
		if c.elements > maxBERElements {
			return 0, fmt.Errorf("%w: too many elements", errBER)
		}
		h, err := readBERHeader(body[off:])
		if err != nil {
			return 0, err
		}
		if h.class != 0 || h.tag != tag {
			return 0, fmt.Errorf("%w: a chunk of a constructed string has another type", errBER)
		}
		inner := body[off+h.hdrLen:]
		if !h.indefinite {
			inner = inner[:h.length]
		}
		var n int
		if h.constructed {
			n, err = c.joinChunks(out, inner, h.indefinite, tag, depth+1, first && len(*out) == 0)
			if err != nil {
				return 0, err
			}
		} else {
			v := inner[:h.length]
			if tag == 3 {
				if len(v) == 0 {
					return 0, errBER
				}
				if !(first && len(*out) == 0) {
					if v[0] != 0 {
						return 0, fmt.Errorf("%w: BIT STRING chunk with unused bits", errBER)
					}
					v = v[1:]
				}
			}
			*out = append(*out, v...)
			n = h.length
		}
		off += h.hdrLen + n
	}
}

// addHeader writes h's identifier with a definite length computed by
// cryptobyte around what content writes.
func (c *berConv) addHeader(b *cryptobyte.Builder, h berHeader, constructed bool, content func(*cryptobyte.Builder)) {
	id := byte(h.class << 6)
	if constructed {
		id |= 0x20
	}
	if h.tag < 0x1f {
		b.AddASN1(cbasn1.Tag(id|byte(h.tag)), content)
		return
	}
	// High tag numbers: cryptobyte's AddASN1 takes low tags only; CMS uses
	// none, but the conversion must stay faithful. Write identifier octets,
	// then a length prefix cryptobyte computes.
	b.AddUint8(id | 0x1f)
	var t []byte
	for v := h.tag; v > 0; v >>= 7 {
		t = append([]byte{byte(v & 0x7f)}, t...)
	}
	for i := 0; i < len(t)-1; i++ {
		t[i] |= 0x80
	}
	b.AddBytes(t)
	var inner cryptobyte.Builder
	content(&inner)
	body, err := inner.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	b.AddBytes(derLength(len(body)))
	b.AddBytes(body)
}

// derLength returns the DER length octets for n (X.690 §10.1: the shortest
// form).
func derLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var l []byte
	for v := n; v > 0; v >>= 8 {
		l = append([]byte{byte(v)}, l...)
	}
	return append([]byte{0x80 | byte(len(l))}, l...)
}
