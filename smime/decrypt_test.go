package smime

import (
	"fmt"
	"strings"
	"testing"
)

// The error for a post not encrypted to the list names a few of its
// recipients, however many RecipientInfos it carries.
func TestErrNotForListIsBounded(t *testing.T) {
	recipients := make([]string, 5000)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("issuer CN=ca%d, serial %d", i, i)
	}
	msg := (&ErrNotForList{Recipients: recipients}).Error()
	if len(msg) > 400 || !strings.Contains(msg, recipients[0]) || !strings.Contains(msg, "and 4997 more") || strings.Contains(msg, recipients[3]+";") {
		t.Errorf("%d bytes: %s", len(msg), msg)
	}
}
