package deploy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/config"
)

// isaclist init and isaclist-install-cert rely on the example's hostname.
func TestExampleHostname(t *testing.T) {
	if !bytes.Contains(Example, []byte("\nhostname = \""+ExampleHostname+"\"\n")) {
		t.Fatalf("the example does not set hostname = %q", ExampleHostname)
	}
}

// isaclist.toml(5) documents every key of the configuration, with the
// comment the example gives it.
func TestConfigManPageHasEveryKey(t *testing.T) {
	page := string(ConfigManPage("2026-12-07", "v1.2.3"))
	keys := map[string]bool{}
	for _, k := range ExampleKeys() {
		keys[k] = true
	}
	var want []string
	flattenKeys("", reflect.TypeOf(config.Config{}), &want)
	for _, k := range want {
		if !keys[k] {
			t.Errorf("the example does not set %s", k)
		}
		table, key := "", k
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			table, key = k[:i], k[i+1:]
		}
		sec := ".SH \"TOP-LEVEL KEYS\""
		if table != "" {
			sec = ".SH \"[" + table + "]\""
		}
		i := strings.Index(page, sec)
		if i < 0 {
			t.Fatalf("no section %s in:\n%s", sec, page)
		}
		body := page[i+len(sec):]
		if j := strings.Index(body, ".SH "); j >= 0 {
			body = body[:j]
		}
		if !strings.Contains(body, "\\fB"+strings.ReplaceAll(key, "-", "\\-")+"\\fR = ") {
			t.Errorf("%s is not in section %s", k, sec)
		}
	}
	for _, s := range []string{".TH ISACLIST.TOML 5 \"2026-12-07\" \"isaclist v1.2.3\"", "hostname\\fR = \"lists.energy\\-isac.example\"",
		"The server's own DNS name", "Port 9025"} {
		if !strings.Contains(page, s) {
			t.Errorf("%q not in the page", s)
		}
	}
	if len(keys) != len(want) {
		t.Errorf("the example has %d keys, the configuration %d", len(keys), len(want))
	}
}

func flattenKeys(prefix string, t reflect.Type, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(config.Duration{}) {
			flattenKeys(name, f.Type, out)
			continue
		}
		*out = append(*out, name)
	}
}
