package smime

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestBERToDER(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"DER unchanged", "30 06 02 01 05 04 01 aa", "30 06 02 01 05 04 01 aa"},
		{"indefinite sequence", "30 80 02 01 05 00 00", "30 03 02 01 05"},
		{"nested indefinite", "30 80 a0 80 30 80 02 01 01 00 00 00 00 00 00", "30 07 a0 05 30 03 02 01 01"},
		{"constructed octet string", "24 80 04 02 aa bb 04 01 cc 00 00", "04 03 aa bb cc"},
		{"definite constructed octet string", "24 07 04 02 aa bb 04 01 cc", "04 03 aa bb cc"},
		{"nested chunks", "24 80 24 80 04 01 aa 00 00 04 01 bb 00 00", "04 02 aa bb"},
		{"context constructed keeps its chunks", "a0 80 04 01 aa 04 01 bb 00 00", "a0 06 04 01 aa 04 01 bb"},
		{"long form length shortened", "04 81 02 aa bb", "04 02 aa bb"},
		{"constructed bit string", "23 80 03 02 00 aa 03 02 00 bb 00 00", "03 03 00 aa bb"},
		{"high tag number", "9f 21 01 aa", "9f 21 01 aa"},
	} {
		got, err := berToDER(h(tc.in))
		if err != nil || !bytes.Equal(got, h(tc.want)) {
			t.Errorf("%s: got %x, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	long := append([]byte{0x04, 0x82, 0x01, 0x2c}, make([]byte, 300)...)
	if got, err := berToDER(long); err != nil || !bytes.Equal(got, long) {
		t.Errorf("long definite: %v", err)
	}
}

func TestBERToDERRefuses(t *testing.T) {
	deep := bytes.Repeat([]byte{0x30, 0x80}, maxBERDepth+2)
	deep = append(deep, bytes.Repeat([]byte{0, 0}, maxBERDepth+2)...)
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"truncated", "30 05 02 01"},
		{"length beyond input", "04 84 7f ff ff ff aa"},
		{"five length octets", "04 85 00 00 00 00 01 aa"},
		{"indefinite primitive", "04 80 aa 00 00"},
		{"missing end-of-contents", "30 80 02 01 05"},
		{"stray end-of-contents", "30 02 00 00"},
		{"trailing data", "02 01 05 00"},
		{"chunk of another type", "24 80 02 01 05 00 00"},
		{"bit string chunk with unused bits in the middle", "23 80 03 02 04 aa 03 02 04 bb 00 00"},
		{"deep", hex.EncodeToString(deep)},
	} {
		if _, err := berToDER(h(tc.in)); !errors.Is(err, errBER) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
}
