package tlp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Results other than a label, for the table.
const (
	noLabel Label = -1 // ErrNoLabel
	unknown Label = -2 // *UnknownLabelError
)

// readCases is shared with the fuzz seeds (see fuzz_test.go).
var readCases = []struct {
	subject string
	want    Label
	word    string // UnknownLabelError.Word, when want is unknown and it matters
}{
	// The forms people type.
	{"[TLP:AMBER] Outage", Amber, ""},
	{"TLP:AMBER Outage", Amber, ""},
	{"tlp: amber outage", Amber, ""},
	{"[TLP AMBER] outage", Amber, ""},
	{"(TLP:GREEN) phishing wave", Green, ""},
	{"TLP-RED: ransomware at a member", Red, ""},
	{"TLP: AMBER + STRICT board minutes", AmberStrict, ""},
	{"TLP:AMBER+STRICT", AmberStrict, ""},
	{"[TLP:AMBER+STRICT] x", AmberStrict, ""},
	{"TLP:WHITE newsletter", Clear, ""},
	{"TLP:CLEAR newsletter", Clear, ""},
	{"Tlp:Clear newsletter", Clear, ""},
	{"[tLp:gReEn] x", Green, ""},
	{"TLP : RED", Red, ""},
	{"TLP  :   RED", Red, ""},
	{"TLP\t:\tRED", Red, ""},
	{"TLP :RED", Red, ""},
	{"TLP_RED", Red, ""},
	{"TLP/RED", Red, ""},
	{"TLP::RED", Red, ""},
	{"TLP – RED", Red, ""},    // en dash
	{"TLP—RED", Red, ""},      // em dash
	{"TLP\u2212RED", Red, ""}, // minus sign
	{"TLP\u00a0:\u00a0AMBER", Amber, ""},
	{"TLP：AMBER", Amber, ""}, // fullwidth colon
	{"ＴＬＰ：ＡＭＢＥＲ", Amber, ""}, // fullwidth everything
	{"［ＴＬＰ：ＲＥＤ］ 障害", Red, ""},
	{"ＴＬＰ\u3000ＲＥＤ", Red, ""}, // ideographic space
	{"【TLP:AMBER】 障害情報", Amber, ""},
	{"TLP:AMBER＋STRICT", AmberStrict, ""},
	{"Re: TLP:GREEN", Green, ""},
	{"Re:[TLP:GREEN]x", Green, ""},
	{"TLP:RED's findings", Red, ""},
	{"TLP:RED.", Red, ""},
	{"TLP:RED-team exercise", Red, ""},
	{"TLP:GREEN + slides", Green, ""},
	{"tlp:amber\r\n strict", AmberStrict, ""},

	// AMBER+STRICT is never AMBER.
	{"TLP:AMBER +STRICT", AmberStrict, ""},
	{"TLP:AMBER+ STRICT", AmberStrict, ""},
	{"TLP: amber+ strict", AmberStrict, ""},
	{"TLP:AMBER + STRICT", AmberStrict, ""},
	{"TLP:AMBER\t+\tSTRICT", AmberStrict, ""},
	{"[TLP:AMBER + STRICT]", AmberStrict, ""},
	{"[TLP AMBER+STRICT]", AmberStrict, ""},
	{"TLP:AMBER STRICT", AmberStrict, ""},
	{"TLP:AMBER-STRICT", AmberStrict, ""},
	{"TLP:AMBER_STRICT", AmberStrict, ""},
	{"TLP:AMBER / STRICT", AmberStrict, ""},
	{"TLP:amber+strict", AmberStrict, ""},
	{"TLP:AMBER＋ＳＴＲＩＣＴ", AmberStrict, ""},
	{"TLP:AMBER+STRIKT", unknown, "TLP:AMBER+STRIKT"},
	{"TLP:AMBER+STRICTLY", unknown, "TLP:AMBER+STRICTLY"},
	{"TLP:AMBER+", unknown, "TLP:AMBER+"},
	{"TLP:AMBER+ (x)", unknown, "TLP:AMBER+"},
	{"TLP:AMBER + slides", unknown, "TLP:AMBER + slides"},
	{"TLP:AMBERSTRICT", unknown, "TLP:AMBERSTRICT"},
	{"TLP:AMBER+STRIСT", unknown, ""}, // Cyrillic С
	{"TLP:AMBER STRIСT", unknown, ""},
	{"TLP:RED+STRICT", unknown, "TLP:RED+STRICT"},
	{"TLP:GREEN + STRICT", unknown, "TLP:GREEN + STRICT"},
	{"TLP:AMBER strictly between us", Amber, ""},
	{"TLP:AMBER, strict deadline", Amber, ""},
	{"[TLP:AMBER] STRICT deadline", Amber, ""},
	{"[TLP:AMBER STRIKT]", unknown, "TLP:AMBER STRIKT"},
	{"[TLP:RED ALERT] x", unknown, "TLP:RED ALERT"},
	{"[TLP:GREEN] draft]", Green, ""},
	{"[TLP:GREEN, draft]", Green, ""},
	{"[TLP:GREEN draft notes]", Green, ""},
	{"TLP:AMBER STRIKT", Amber, ""}, // unbracketed, a word after the label is prose
	{"TLP:GREEN/AMBER", unknown, "TLP:GREEN/AMBER"},
	{"TLP:RED / amber", unknown, "TLP:RED / amber"},
	{"TLP:AMBER/RED", unknown, "TLP:AMBER/RED"},
	{"TLP:GREEN/AMBЕR", unknown, ""},
	{"TLP:GREEN / slides", Green, ""},
	{"TLP:GREEN+AMBER", unknown, "TLP:GREEN+AMBER"},
	{"TLP:CLEAR + red", unknown, "TLP:CLEAR + red"},
	{"TLP:GREEN - Red team exercise", Green, ""},
	{"TLP:RED-STRICT", Red, ""},

	// Words end on word boundaries; a separator makes an attempt.
	{"TLP:REDACTED report", unknown, "TLP:REDACTED"},
	{"TLP:GREENISH", unknown, "TLP:GREENISH"},
	{"TLP:ORANGE", unknown, "TLP:ORANGE"},
	{"TLP:YELLOW", unknown, "TLP:YELLOW"},
	{"TLP-based sharing", unknown, "TLP-based"},
	{"TLP: question about sharing", unknown, "TLP: question"},
	{"TLP:", unknown, "TLP:"},
	{"[TLP:] x", unknown, "TLP:"},
	{"TLP: (see below)", unknown, "TLP:"},
	{"TLP:2.0", unknown, "TLP:2"},
	{"TLP:RED2", unknown, "TLP:RED2"},
	{"TLP:RÉD", unknown, "TLP:RÉD"},
	{"TLP:RE\u0301D", unknown, ""},
	{"[TLP ORANGE]", unknown, "TLP ORANGE"},
	{"( TLP orange )", unknown, "TLP orange"},
	{"TLP ORANGE", noLabel, ""},
	{"TLP training next week", noLabel, ""},
	{"(TLP training materials)", noLabel, ""},
	{"[TLP ORANGE)", noLabel, ""},
	{"TLP clear guidance", Clear, ""},
	{"What is TLP? A primer", noLabel, ""},
	{"About TLP.", noLabel, ""},
	{"TLP, explained", noLabel, ""},
	{"(TLP) explained", noLabel, ""},
	{"TLP", noLabel, ""},
	{"TLP 2.0 is out", noLabel, ""},

	// TLP must be a whole word.
	{"XTLP:RED", noLabel, ""},
	{"HTTP:RED", noLabel, ""},
	{"TLPX:RED", noLabel, ""},
	{"TLP1:RED", noLabel, ""},
	{"report_TLP_RED.pdf", Red, ""},
	{"report-TLP-GREEN", Green, ""},
	{"X\u200bTLP:RED", noLabel, ""},

	// Look-alikes are refused, never read as a lower label.
	{"TLP:RЕD", unknown, "TLP:RЕD"},          // Cyrillic Е
	{"TLP:АMBER", unknown, ""},               // Cyrillic А
	{"TLP:GREЕN", unknown, ""},               // Cyrillic Е
	{"[TLP:GREEN] TLP:RЕD", unknown, ""},     // beside a valid label
	{"[TLP:GREEN] ТLP:RED", unknown, ""},     // Cyrillic Т in TLP
	{"[TLP:GREEN] TLР AMBER", unknown, ""},   // Cyrillic Р in TLP, space only
	{"[TLP:GREEN] TLP RЕD", unknown, ""},     // look-alike label after a space
	{"[TLP:GREEN] TLP АMBER x", unknown, ""}, // idem
	{"Ｔlp:red", Red, ""},                     // fullwidth folds to ASCII
	{"TLP:\u202eDER", unknown, ""},           // right-to-left override shows "RED"
	{"TLP:R\u200bED", Red, ""},               // zero-width space is invisible
	{"TLP:RE\u00adD", Red, ""},               // soft hyphen
	{"T\u200bLP:RED", Red, ""},
	{"\ufeffTLP:AMBER", Amber, ""},
	{"ТЛП: новости", noLabel, ""}, // another script, not a look-alike of TLP

	// Several labels: the most restrictive applies.
	{"Fwd: [TLP:GREEN] Re: [TLP:AMBER] x", Amber, ""},
	{"Fwd: [TLP:AMBER+STRICT] Re: [TLP:AMBER] x", AmberStrict, ""},
	{"[TLP:RED] Re: [TLP:CLEAR]", Red, ""},
	{"TLP:CLEAR TLP:WHITE", Clear, ""},
	{"TLP TLP:RED", Red, ""},
	{"[TLP:GREEN][TLP:AMBER]", Amber, ""},
	// An unknown label anywhere wins over valid ones.
	{"[TLP:RED] TLP:ORANGE", unknown, "TLP:ORANGE"},
	{"TLP:ORANGE [TLP:RED]", unknown, "TLP:ORANGE"},
	{"[TLP:GREEN] TLP:REDACTED", unknown, "TLP:REDACTED"},

	// No label.
	{"", noLabel, ""},
	{"Outage at the substation", noLabel, ""},
	{"RED alert", noLabel, ""},
	{"[AMBER] x", noLabel, ""},
	{"TLP\u0301:RED", noLabel, ""},

	// RFC 2047.
	{"=?utf-8?q?=5BTLP=3ARED=5D_outage?=", Red, ""},
	{"=?UTF-8?Q?=5BTLP=3AAMBER=2BSTRICT=5D?= outage", AmberStrict, ""},
	{"=?utf-8?b?W1RMUDpBTUJFUl0gb3V0YWdl?=", Amber, ""},
	{"=?iso-8859-1?q?=5BTLP=3AGREEN=5D_St=F6rung?=", Green, ""},
	{"=?windows-1252?q?=5BTLP=3AGREEN=5D_=80?=", Green, ""},
	{"=?utf-8?q?=5BTLP=3AAM?= =?utf-8?q?BER=5D_x?=", Amber, ""},
	{"=?utf-8?q?=5BTLP=3AAM?=\r\n =?utf-8?q?BER=5D_x?=", Amber, ""},
	{"=?utf-8?q?=5BTLP=3AAMBER?= =?utf-8?q?+STRICT=5D?=", AmberStrict, ""},
	{"=?utf-8?q?=5BTLP=3AAMBER?= +STRICT]", AmberStrict, ""},
	{"=?utf-8*en?q?TLP=3ARED?=", Red, ""},
	{"=?utf-8?q?TLP=3AR=D0=95D?=", unknown, ""}, // Cyrillic Е, encoded
	{"=?koi8-r?b?9OzwOlJFRA==?=", noLabel, ""},  // "ТЛП:RED" in KOI8-R
	{"=?x-unknown?q?=5BTLP=3ARED=5D?=", noLabel, ""},
	{"=?x-unknown?q?[TLP:RED]?=", Red, ""},
	{"=?utf-8?q?broken=ZZ?= [TLP:GREEN]", Green, ""},
	{"=?utf-8?x?abc?= [TLP:GREEN]", Green, ""},
	{"=?utf-8?q?[TLP:?=", unknown, ""},
	{"[TLP:GREEN] =?utf-8?q?TLP=3AREDACTED?=", unknown, "TLP:REDACTED"},
	{"=?utf-8?q?TLP?= =?utf-8?q?=3ARED?=", Red, ""},
	{"=?utf-8?q?TLP?=:RED", Red, ""},
	{"=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D5BTLP=3D3ARED=3D5D=3F=3D?=", noLabel, ""}, // decoded once, as RFC 2047 says

	// Control characters and broken bytes.
	{"TLP:\x00RED", Red, ""},
	{"TLP\x00RED", Red, ""},
	{"\xff[TLP:AMBER]\xfe", Amber, ""},
	{"TLP:\xffRED", unknown, "TLP:"},
	{"TLP:RED\xff", Red, ""},
}

func TestRead(t *testing.T) {
	for _, c := range readCases {
		got, err := Read(c.subject)
		switch c.want {
		case noLabel:
			if !errors.Is(err, ErrNoLabel) {
				t.Errorf("Read(%q) = %v, %v; want ErrNoLabel", c.subject, got, err)
			}
		case unknown:
			var u *UnknownLabelError
			if !errors.As(err, &u) {
				t.Errorf("Read(%q) = %v, %v; want UnknownLabelError", c.subject, got, err)
			} else if c.word != "" && u.Word != c.word {
				t.Errorf("Read(%q): Word = %q, want %q", c.subject, u.Word, c.word)
			}
		default:
			if err != nil || got != c.want {
				t.Errorf("Read(%q) = %v, %v; want %v", c.subject, got, err, c.want)
			}
		}
		if err != nil && got != 0 {
			t.Errorf("Read(%q) = %v with error %v; want the zero Label", c.subject, got, err)
		}
	}
}

// TestAmberStrictNeverAmber tries AMBER+STRICT in every spacing and case:
// it must read as AMBER+STRICT, and its misspellings must be refused, never
// read as AMBER.
func TestAmberStrictNeverAmber(t *testing.T) {
	seps := []string{":", " : ", ": ", "-", " ", "\t", "：", "_", " – ", "\u200b:"}
	pluses := []string{"+", " +", "+ ", " + ", "＋", " ＋ ", "\t+\r\n ", " ", "-", "_", " / "}
	title := func(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
	cases := []func(string) string{strings.ToUpper, strings.ToLower, title}
	for _, sep := range seps {
		for _, plus := range pluses {
			for _, c := range cases {
				for _, wrap := range []string{"%s", "[%s]", "(%s) x", "Re: %s x"} {
					label := c("tlp") + sep + c("amber") + plus + c("strict")
					s := strings.Replace(wrap, "%s", label, 1)
					if got, err := Read(s); got != AmberStrict || err != nil {
						t.Errorf("Read(%q) = %v, %v; want AMBER+STRICT", s, got, err)
					}
					// Misspelt, it is refused after a '+' or in brackets,
					// where it cannot be prose; the look-alike always.
					for _, typo := range []string{"strikt", "stricT2", "stri\u0441t", "s"} {
						s := strings.Replace(wrap, "%s", c("tlp")+sep+c("amber")+plus+c(typo), 1)
						got, _ := Read(s)
						if got == Amber && (strings.Contains(plus, "+") || strings.Contains(plus, "＋") || wrap == "[%s]" || typo == "stri\u0441t") {
							t.Errorf("Read(%q) = AMBER", s)
						}
					}
				}
			}
		}
	}
}

func TestErrors(t *testing.T) {
	want := `no TLP label in the subject: add one of [TLP:RED], [TLP:AMBER+STRICT], [TLP:AMBER], [TLP:GREEN] or [TLP:CLEAR]`
	if ErrNoLabel.Error() != want {
		t.Errorf("ErrNoLabel = %q", ErrNoLabel)
	}
	_, err := Read("[TLP:ORANGE] x")
	want = `"TLP:ORANGE" in the subject is not a TLP 2.0 label: use one of [TLP:RED], [TLP:AMBER+STRICT], [TLP:AMBER], [TLP:GREEN] or [TLP:CLEAR]`
	if err == nil || err.Error() != want {
		t.Errorf("Read(TLP:ORANGE) error = %v, want %s", err, want)
	}
	// A look-alike must show the member why the label that looks right
	// was refused.
	_, err = Read("TLP:R\u0415D x")
	if err == nil || !strings.Contains(err.Error(), `"TLP:R\u0415D"`) || !strings.Contains(err.Error(), "look like Latin") {
		t.Errorf("Read(look-alike) error = %v", err)
	}
	// The word is clipped: an error must not carry a subject into a log.
	_, err = Read("TLP:" + strings.Repeat("A", 200) + " secret")
	var u *UnknownLabelError
	if !errors.As(err, &u) || len(u.Word) > maxWord+3 || strings.Contains(u.Word, "secret") {
		t.Errorf("long unknown label: %v", err)
	}
	// Control characters do not reach the error text.
	_, err = Read("=?utf-8?q?TLP=3A=0D=0AX-Evil=3A_1?=")
	if err == nil || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error with CRLF: %q", err)
	}
}

func TestStrip(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Re: [Energy ISAC] [TLP:AMBER] Outage", "Re: [Energy ISAC] Outage"},
		{"[TLP:AMBER+STRICT] x", "x"},
		{"(TLP:RED) y", "y"},
		{"[TLP:AMBER + STRICT] x", "x"},
		{"TLP:AMBER+STRICT x", "x"},
		{"TLP: amber + strict x", "x"},
		{"x [TLP:GREEN]", "x"},
		{"[ TLP:GREEN ] x", "x"},
		{"[TLP:GREEN, internal] x", "[ , internal] x"},
		{"Fwd: [TLP:GREEN] Re: [TLP:AMBER] x", "Fwd: Re: x"},
		{"Re: TLP:AMBER Outage  at   plant", "Re: Outage at plant"},
		{"a(TLP:RED)b", "a b"},
		{"[TLP ORANGE] x", "x"},
		{"TLP training next week", "TLP training next week"},
		{"[Energy ISAC] x", "[Energy ISAC] x"},
		{"=?utf-8?q?=5BTLP=3ARED=5D_St=C3=B6rung?=", "Störung"},
		{"=?utf-8?q?=5BTLP=3AAM?= =?utf-8?q?BER=5D_x?=", "x"},
		{"\tx\r\n y\x00z ", "x y z"},
		{"\xffx", "\ufffdx"},
		{"TLP:RED", ""},
		{"", ""},
		// Removing a label must not make a new one of its neighbours.
		{"TLP [TLP:RED] RED", "RED"},
		{"[TLP [TLP:RED] ORANGE]", "[ ORANGE]"},
		{"TLP:AMBER [TLP:RED] +STRICT", "+STRICT"},
		// An encoded-word that appears only after decoding is broken, or
		// recipients would decode it again.
		{"=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D5BTLP=3D3ARED=3D5D=3F=3D?=", "=? utf-8?q?=5BTLP=3ARED=5D?="},
		{"=?utf-8?q?=3D=3Fx-unknown=3Fq=3Fa=3F=3D?=", "=?x-unknown?q?a?="},
	}
	for _, c := range cases {
		if got := Strip(c.in); got != c.want {
			t.Errorf("Strip(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecode(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?caf=C3=A9?=", "café"},
		{"=?UTF-8?B?Y2Fmw6k=?=", "café"},
		{"=?iso-8859-1?q?caf=E9?=", "café"},
		{"=?ISO-8859-15?q?=A4?=", "€"},
		{"=?windows-1251?b?0u/w?=", "Тпр"},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},
		{"=?utf-8?q?a?=\r\n\t=?utf-8?q?b?=", "ab"},
		{"=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"},
		{"x =?utf-8?q?a_b?= y", "x a b y"},
		{"=?utf-8?q?a b?=", "=?utf-8?q?a b?="},                     // RFC 2047: no space in a word
		{"=?x-unknown?q?a?= =?utf-8?q?b?=", "=?x-unknown?q?a?= b"}, // an unknown charset only spoils its own word
		{"=?utf-8?q?=ZZ?=", "=?utf-8?q?=ZZ?="},
		{"=?utf-8?q?a", "=?utf-8?q?a"},
		{"=??q?a?=", "=??q?a?="},
		{"=?=?utf-8?q?a?=", "=?a"},
		{"2+2=?", "2+2=?"},
	}
	for _, c := range cases {
		if got := Decode(c.in); got != c.want {
			t.Errorf("Decode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestLinear runs the reader on subjects built to make naive parsers
// quadratic, at 128 KiB and at 1 MiB: linear work grows 8 times, quadratic
// 64 times. It compares the two in one run (the machine may be slow or
// busy; a ratio does not care), taking the best of three runs of each.
func TestLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	shapes := map[string]func(n int) string{
		"encoded-word starts": func(n int) string { return strings.Repeat("=?utf-8?q?x =", n/13) + "?=" },
		"unclosed words":      func(n int) string { return strings.Repeat("=?a?q?", n/6) },
		"failing words":       func(n int) string { return strings.Repeat("=?utf-8?q?=Z", n/12) + "?=" },
		"words":               func(n int) string { return strings.Repeat("=?utf-8?q?TLP=3A?= ", n/19) },
		"TLP TLP":             func(n int) string { return strings.Repeat("TLP ", n/4) },
		"TLP:TLP:":            func(n int) string { return strings.Repeat("TLP:", n/4) },
		"TLP: ":               func(n int) string { return strings.Repeat("TLP: ", n/5) },
		"[TLP [TLP":           func(n int) string { return strings.Repeat("[TLP ", n/5) },
		"labels":              func(n int) string { return strings.Repeat("[TLP:AMBER] ", n/12) },
		"amber spaces":        func(n int) string { return strings.Repeat("TLP:AMBER"+strings.Repeat(" ", 1000), n/1009) },
		"long word":           func(n int) string { return "TLP:" + strings.Repeat("A", n) },
		"long space":          func(n int) string { return "TLP" + strings.Repeat(" ", n) + "AMBER" },
		"separators":          func(n int) string { return "TLP" + strings.Repeat(":", n) },
		"zero width":          func(n int) string { return strings.Repeat("\u200b", n/3) },
		"nul":                 func(n int) string { return strings.Repeat("\x00", n) },
		"invalid":             func(n int) string { return strings.Repeat("\xff", n) },
		"strip rejoin":        func(n int) string { return strings.Repeat("TLP ", n/12) + strings.Repeat("[TLP:RED] RED ", n/24) },
	}
	best := func(s string) time.Duration {
		var b time.Duration
		for i := 0; i < 3; i++ {
			start := time.Now()
			Read(s)
			Strip(s)
			Decode(s)
			if d := time.Since(start); i == 0 || d < b {
				b = d
			}
		}
		return b
	}
	for name, shape := range shapes {
		small, large := best(shape(128<<10)), best(shape(1<<20))
		ratio := float64(large) / float64(max(small, time.Microsecond))
		t.Logf("%s: 128 KiB %v, 1 MiB %v (x%.1f)", name, small, large, ratio)
		if ratio > 24 {
			t.Errorf("%s: 8 times the input took %.0f times as long: not linear", name, ratio)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	subjects := []string{
		"Re: [Energy ISAC] [TLP:AMBER+STRICT] Outage at the substation",
		"=?utf-8?q?Fwd=3A_=5BTLP=3AGREEN=5D_St=C3=B6rung?=",
		"No label in this fairly ordinary subject line at all",
	}
	for _, s := range subjects {
		b.Run(s[:10], func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				Read(s)
			}
		})
	}
}
