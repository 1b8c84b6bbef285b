package deploy

import (
	"bytes"
	"testing"
)

// isaclist init and isaclist-install-cert rely on the example's hostname.
func TestExampleHostname(t *testing.T) {
	if !bytes.Contains(Example, []byte("\nhostname = \""+ExampleHostname+"\"\n")) {
		t.Fatalf("the example does not set hostname = %q", ExampleHostname)
	}
}
