package pgp

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// gpgMember is a member with a GnuPG home holding only their own key.
type gpgMember struct {
	name, uid  string
	prim, enc  string
	keyPackMod int // len(key packet) mod 3 this key type gives
	home       *gpgHome
	fpr, encID string
	pub        *PublicKey
}

// makeMembers creates the members' keys with gpg, in parallel (RSA key
// generation takes seconds).
func makeMembers(t *testing.T, ms []*gpgMember) {
	var wg sync.WaitGroup
	for _, m := range ms {
		m.home = newGPG(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.fpr = m.home.genKey(m.uid, m.prim, m.enc, "never")
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range ms {
		m.encID = m.home.encSubkeyID(m.fpr)
		p, err := ParsePublicKey(m.home.export(m.fpr))
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if p.Fingerprint() != m.fpr {
			t.Fatalf("%s: fingerprint %s, gpg says %s", m.name, p.Fingerprint(), m.fpr)
		}
		m.pub = p
	}
}

var pubkeyEncRE = regexp.MustCompile(`(?m)^:pubkey enc packet: version 3, algo \d+, keyid ([0-9A-F]{16})`)

// TestRoundTripGPG is issue 3 point 7: a post sealed once, one armored copy
// per member; each copy decrypts in gpg for its member and for no other,
// names one recipient, and carries the list's signature, which gpg
// verifies. The members' key types give key packets of every length mod 3,
// so all three armor alignments go through gpg.
func TestRoundTripGPG(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: generates RSA keys with gpg")
	}
	members := []*gpgMember{
		{name: "alice", uid: "Alice <alice@member-a.example>", prim: "ed25519", enc: "cv25519", keyPackMod: 0},
		{name: "bob", uid: "Bob <bob@member-b.example>", prim: "rsa3072", enc: "rsa3072", keyPackMod: 0},
		{name: "carol", uid: "Carol <carol@member-c.example>", prim: "ed25519", enc: "rsa2048", keyPackMod: 1},
		{name: "dave", uid: "Dave <dave@member-d.example>", prim: "nistp256", enc: "nistp256", keyPackMod: 2},
	}
	makeMembers(t, members)
	now := time.Now()
	body := testMIME(1<<20, 1)

	for _, algo := range []string{"curve25519", "rsa4096"} {
		t.Run(algo, func(t *testing.T) {
			lk, _ := newListKey(t, algo, now)
			pubArmored, err := lk.ArmoredPublic()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(pubArmored, "PRIVATE") {
				t.Fatal("ArmoredPublic holds a private key block")
			}
			listKeyID := lk.Fingerprint()[24:]
			for _, m := range members {
				m.home.importKey([]byte(pubArmored))
			}

			var seipd bytes.Buffer
			sk, err := Seal(&seipd, bytes.NewReader(body), lk, now)
			if err != nil {
				t.Fatal(err)
			}
			arm := NewArmored(seipd.Bytes())
			seen := map[int]bool{}
			copies := map[string]string{} // member -> file
			for _, m := range members {
				var kp []byte
				// An RSA ciphertext MPI is one byte shorter when its top
				// byte happens to be zero (about 1 in 256); draw again
				// so that each key type gives its nominal alignment.
				for try := 0; try < 64; try++ {
					if kp, err = sk.KeyPacket(m.pub, now); err != nil {
						t.Fatal(err)
					}
					if len(kp)%3 == m.keyPackMod {
						break
					}
				}
				if len(kp)%3 != m.keyPackMod {
					t.Fatalf("%s: key packet length %d", m.name, len(kp))
				}
				seen[len(kp)%3] = true
				pieces, err := arm.Pieces(kp)
				if err != nil {
					t.Fatal(err)
				}
				cp := joinPieces(pieces)
				checkArmorLines(t, cp)
				// The armored copy carries exactly keyPacket || seipd.
				blk, err := armor.Decode(bytes.NewReader(cp))
				if err != nil {
					t.Fatal(err)
				}
				bin, err := io.ReadAll(blk.Body)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(bin, append(append([]byte{}, kp...), seipd.Bytes()...)) {
					t.Fatalf("%s: armored copy is not keyPacket||seipd", m.name)
				}
				copies[m.name] = m.home.writeFile("copy-"+algo+".asc", cp)
			}
			sk.Wipe()
			for i := 0; i < 3; i++ {
				if !seen[i] {
					t.Errorf("alignment with key packet length ≡ %d (mod 3) not exercised", i)
				}
			}

			for _, m := range members {
				file := copies[m.name]
				// One recipient, named by that member's subkey.
				lp := string(m.home.must(nil, "--list-packets", file))
				recips := pubkeyEncRE.FindAllStringSubmatch(lp, -1)
				if len(recips) != 1 || recips[0][1] != m.encID {
					t.Errorf("%s: gpg --list-packets recipients %v, want exactly [%s]\n%s", m.name, recips, m.encID, lp)
				}
				// (gpg --list-packets stops at literal data of unknown
				// length, so the signature packet itself is checked
				// through gpg's status lines below and in TestSealPackets.)
				for _, want := range []string{":onepass_sig packet:", ":literal data packet:", "mdc_method: 2", "mode b "} {
					if !strings.Contains(lp, want) {
						t.Errorf("%s: gpg --list-packets lacks %q", m.name, want)
					}
				}
				if strings.Contains(lp, ":compressed packet:") {
					t.Errorf("%s: the copy is compressed", m.name)
				}

				// gpg decrypts it for the member, byte-exact, and verifies
				// the list's signature.
				out := filepath.Join(m.home.dir, "out-"+algo)
				st := status(m.home.must(nil, "--status-fd", "1", "--output", out, "--decrypt", file))
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, body) {
					t.Errorf("%s: gpg decrypted %d bytes, not the %d-byte body", m.name, len(got), len(body))
				}
				for _, want := range []string{"DECRYPTION_OKAY", "GOODMDC", "GOODSIG " + listKeyID, "VALIDSIG " + lk.Fingerprint()} {
					if !hasStatus(st, want) {
						t.Errorf("%s: gpg status lacks %q: %v", m.name, want, st)
					}
				}

				// gpg does check the armor checksum: a copy with a wrong
				// CRC is refused, so the combined CRC above is what gpg
				// wanted, not something it ignored.
				if m.name == "alice" {
					cp, _ := os.ReadFile(file)
					i := bytes.LastIndex(cp, []byte("\r\n=")) + 3
					bad := append([]byte{}, cp...)
					bad[i+1] ^= 0x01 // still base64, another CRC
					if bad[i+1] == cp[i+1] || !isB64(bad[i+1]) {
						bad[i+1] = 'A' + (cp[i+1]-'A'+1)%26
					}
					badFile := m.home.writeFile("badcrc-"+algo+".asc", bad)
					_, errOut, err := m.home.run(nil, "--output", filepath.Join(m.home.dir, "badcrc.out"), "--decrypt", badFile)
					if err == nil || !strings.Contains(string(errOut), "CRC") {
						t.Errorf("gpg accepted a copy with a wrong armor checksum: %v %s", err, errOut)
					}
				}

				// No other member can read it.
				for _, o := range members {
					if o == m {
						continue
					}
					outO := filepath.Join(o.home.dir, "stolen-"+algo)
					stdout, _, err := o.home.run(nil, "--status-fd", "1", "--output", outO, "--decrypt", file)
					if err == nil || hasStatus(status(stdout), "DECRYPTION_OKAY") {
						t.Errorf("%s's copy decrypted with %s's key", m.name, o.name)
					}
					if b, err := os.ReadFile(outO); err == nil && bytes.Contains(b, body[:200]) {
						t.Errorf("%s's copy yielded plaintext to %s", m.name, o.name)
					}
				}
			}
		})
	}
}

// checkArmorLines checks an armored copy's framing: CRLF everywhere, base64
// lines of at most 76 characters, each a whole number of 4-char groups.
func checkArmorLines(t *testing.T, cp []byte) {
	t.Helper()
	s := string(cp)
	if !strings.HasSuffix(s, "\r\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Fatal("armor lines are not CRLF-terminated")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
	if lines[0] != "-----BEGIN PGP MESSAGE-----" || lines[1] != "" || lines[len(lines)-1] != "-----END PGP MESSAGE-----" {
		t.Fatalf("bad armor framing: %q ... %q", lines[:2], lines[len(lines)-1])
	}
	if c := lines[len(lines)-2]; len(c) != 5 || c[0] != '=' {
		t.Fatalf("bad checksum line %q", c)
	}
	for _, l := range lines[2 : len(lines)-2] {
		if len(l) == 0 || len(l) > 76 || len(l)%4 != 0 {
			t.Fatalf("bad base64 line length %d: %q", len(l), l)
		}
	}
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}
