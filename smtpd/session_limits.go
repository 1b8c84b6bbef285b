package smtpd

import "github.com/isaclist/isaclist/reply"

// The session's side of the connection and refusal limits (capacity.go,
// limits.go), kept apart from the protocol in session.go.
//
// Behind a trusted relay the limits are the forwarded client's: its
// address (limitIP) is what refusals count against, what is turned away
// at MAIL FROM, and what max_connections_per_ip caps, in transactions in
// progress through any of the relay's sessions rather than connections.
// What a client that connects itself is told with 421 and the end of its
// session, the forwarded client's message is told with 450 4.7.0 at MAIL
// FROM: the relay's session, which carries other clients' mail too, goes
// on, and the relay retries that message later. The relay itself is not
// capped per address and counts as a member's server (capacity.go, admit).

// senderTurnedAway answers 421 and ends the session when the client's
// address has passed its refusal limit with this MAIL FROM domain; for a
// client a trusted relay forwards it answers 450 and holds the client's
// place among its transactions in progress.
func (sess *session) senderTurnedAway(from string) error {
	ip := sess.limitIP()
	if ip == nil {
		return nil
	}
	if sess.relay {
		return sess.forwardedTurnedAway(ip.String(), from)
	}
	why := sess.srv.limit.senderRefused(ip.String(), senderDomain(from))
	if why == "" {
		return nil
	}
	sess.log.Info("session closed", "reason", why, "sender_domain", senderDomain(from))
	r := reply.New(reply.TooMuch, "%s; try again later", why)
	sess.abortWith(r)
	return render(r, sess.traceID())
}

func (sess *session) forwardedTurnedAway(ip, from string) error {
	why := sess.srv.limit.forwardedRefused(ip, senderDomain(from))
	sess.mu.Lock()
	forwarded := sess.fwd != nil && sess.fwd.addr != nil
	held := sess.fwdHeld
	sess.mu.Unlock()
	if why == "" && forwarded && held != clientKey(ip) {
		// A MAIL FROM refused after the hold leaves it in place until
		// the next one or the end of the session (Reset).
		if held != "" {
			sess.srv.limit.releaseForwarded(held)
		}
		key, ok := sess.srv.limit.holdForwarded(ip)
		if !ok {
			key, why = "", "too many messages from your address at once"
		}
		sess.mu.Lock()
		sess.fwdHeld = key
		sess.mu.Unlock()
	}
	if why == "" {
		return nil
	}
	id := sess.newTraceID()
	sess.log.Info("forwarded message refused for now", "id", id, "client", ip, "reason", why, "sender_domain", senderDomain(from))
	return render(reply.New(reply.TooMuchForwarded, "%s; try again later", why), id)
}

// memberPostAccepted records that this client delivered a post that was
// accepted, so authenticated as a member's (a duplicate, which a replay
// could be, does not count): its address may use the members' share of
// connections, and its MAIL FROM domain is trusted by the refusal limit.
func (sess *session) memberPostAccepted(mailFrom string) {
	ip := sess.limitIP()
	if ip == nil {
		return
	}
	sess.srv.limit.noteAccepted(sess.lc, ip.String(), senderDomain(mailFrom))
}
