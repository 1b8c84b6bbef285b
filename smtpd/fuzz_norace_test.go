//go:build !race

package smtpd

const fuzzRace = false
