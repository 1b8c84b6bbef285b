//go:build race

package smtpd

// fuzzRace: the race detector is on (see FuzzSMTPSession's known go-smtp
// race).
const fuzzRace = true
