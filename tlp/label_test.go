package tlp

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLabelNames(t *testing.T) {
	cases := []struct {
		l            Label
		str, name    string
		valid        bool
		bannerPrefix string
	}{
		{0, "", "", false, ""},
		{Clear, "TLP:CLEAR", "CLEAR", true, "TLP:CLEAR - "},
		{Green, "TLP:GREEN", "GREEN", true, "TLP:GREEN - "},
		{Amber, "TLP:AMBER", "AMBER", true, "TLP:AMBER - "},
		{AmberStrict, "TLP:AMBER+STRICT", "AMBER+STRICT", true, "TLP:AMBER+STRICT - "},
		{Red, "TLP:RED", "RED", true, "TLP:RED - "},
		{Red + 1, "tlp.Label(6)", "", false, ""},
		{-1, "tlp.Label(-1)", "", false, ""},
	}
	for _, c := range cases {
		if got := c.l.String(); got != c.str {
			t.Errorf("Label(%d).String() = %q, want %q", int(c.l), got, c.str)
		}
		if got := c.l.Name(); got != c.name {
			t.Errorf("Label(%d).Name() = %q, want %q", int(c.l), got, c.name)
		}
		if got := c.l.Valid(); got != c.valid {
			t.Errorf("Label(%d).Valid() = %v", int(c.l), got)
		}
		b := c.l.Banner()
		if !strings.HasPrefix(b, c.bannerPrefix) || (c.valid && len(b) < 40) || (!c.valid && b != "") {
			t.Errorf("Label(%d).Banner() = %q", int(c.l), b)
		}
		for _, r := range b {
			if r < ' ' || r > '~' {
				t.Errorf("Label(%d).Banner() has %q: not printable ASCII", int(c.l), r)
			}
		}
	}
}

func TestOrder(t *testing.T) {
	order := []Label{0, Clear, Green, Amber, AmberStrict, Red}
	for i, a := range order {
		for j, b := range order {
			want := order[max(i, j)]
			if got := Max(a, b); got != want {
				t.Errorf("Max(%v, %v) = %v, want %v", a, b, got, want)
			}
		}
	}
}

func TestParseLabel(t *testing.T) {
	good := map[string]Label{
		"amber": Amber, "AMBER": Amber, "AMBER+STRICT": AmberStrict, "amber+strict": AmberStrict,
		"TLP:AMBER": Amber, "tlp:red": Red, "white": Clear, "WHITE": Clear, "TLP:WHITE": Clear,
		"clear": Clear, " green ": Green, "TLP:AMBER+STRICT": AmberStrict,
	}
	for s, want := range good {
		if got, err := ParseLabel(s); err != nil || got != want {
			t.Errorf("ParseLabel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "orange", "amber strict", "AMBER + STRICT", "TLP AMBER", "TLP:", "redacted", "TLP:TLP:RED", "АMBER"} {
		l, err := ParseLabel(s)
		if err == nil {
			t.Errorf("ParseLabel(%q) = %v, want an error", s, l)
			continue
		}
		if !strings.Contains(err.Error(), "AMBER+STRICT") {
			t.Errorf("ParseLabel(%q) error %q names no valid value", s, err)
		}
	}
	// Every label survives String, Name and text marshalling.
	for l := Clear; l <= Red; l++ {
		for _, s := range []string{l.String(), l.Name(), strings.ToLower(l.Name())} {
			if got, err := ParseLabel(s); err != nil || got != l {
				t.Errorf("ParseLabel(%q) = %v, %v; want %v", s, got, err, l)
			}
		}
		if got, err := Read("[" + l.String() + "] x"); err != nil || got != l {
			t.Errorf("Read([%v]) = %v, %v", l, got, err)
		}
	}
}

func TestText(t *testing.T) {
	type config struct {
		Default Label `json:"default"`
		Unset   Label `json:"unset"`
	}
	b, err := json.Marshal(config{Default: AmberStrict})
	if err != nil || string(b) != `{"default":"AMBER+STRICT","unset":""}` {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var c config
	if err := json.Unmarshal([]byte(`{"default":"tlp:amber+strict","unset":""}`), &c); err != nil || c.Default != AmberStrict || c.Unset != 0 {
		t.Errorf("json.Unmarshal = %+v, %v", c, err)
	}
	if err := json.Unmarshal([]byte(`{"default":"orange"}`), &c); err == nil {
		t.Errorf("json.Unmarshal(orange) succeeded: %+v", c)
	}
	if _, err := Label(9).MarshalText(); err == nil {
		t.Errorf("MarshalText(9) succeeded")
	}
}
