package smtpd

import "github.com/isaclist/isaclist/reply"

// The session's side of the connection and refusal limits (capacity.go,
// limits.go), kept apart from the protocol in session.go.

// senderTurnedAway answers 421 and ends the session when the client's
// address has passed its refusal limit with this MAIL FROM domain.
func (sess *session) senderTurnedAway(from string) error {
	if sess.ip == nil {
		return nil
	}
	why := sess.srv.limit.senderRefused(sess.ip.String(), senderDomain(from))
	if why == "" {
		return nil
	}
	sess.log.Info("session closed", "reason", why, "sender_domain", senderDomain(from))
	r := reply.New(reply.TooMuch, "%s; try again later", why)
	sess.abortWith(r)
	return render(r, sess.traceID())
}

// memberPostAccepted records that this client delivered a post that was
// accepted, so authenticated as a member's (a duplicate, which a replay
// could be, does not count): its address may use the members' share of
// connections, and its MAIL FROM domain is trusted by the refusal limit.
func (sess *session) memberPostAccepted(mailFrom string) {
	if sess.ip == nil {
		return
	}
	sess.srv.limit.noteAccepted(sess.lc, sess.ip.String(), senderDomain(mailFrom))
}
