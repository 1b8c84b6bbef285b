package intake

import "github.com/isaclist/isaclist/mailhdr"

var testLimits = mailhdr.DefaultLimits()
