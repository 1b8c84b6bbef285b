package main

import (
	"bytes"
	"strings"
	"testing"
)

// The demo a newcomer runs first must show the whole pipeline working.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs([]string{"demo"})
	if err := root.Execute(); err != nil {
		t.Fatalf("demo failed: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{
		"queued as",                       // the post was accepted
		"550 5.7.26",                      // the spoof was refused
		"functional mailbox",              // a membership rule refused security@
		"copy for alice@member-a.example", // every member got a copy
		"copy for bob@member-b.example",
		"copy for carol@member-c.example",
		"DKIM signature of lists.energy-isac.example: verifies",
		"Bob's key opens it",
		"[Energy ISAC] [TLP:RED] Compromise at our substation", // inside Bob's copy only
		"did not receive your TLP:RED message",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Count(s, "[TLP:RED] Compromise") != 1 {
		t.Errorf("the RED subject shows outside Bob's decrypted copy:\n%s", s)
	}
}
