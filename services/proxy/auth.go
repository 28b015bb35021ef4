package proxy

import (
	"fmt"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/sipbus"
)

// authorize challenges a request from one of our users (RFC 3261 §22.3,
// --auth): out of a dialog, with a From in our domain, it must carry our
// realm's Proxy-Authorization for its From user, or it gets 407 (403 once
// locked out, or for another user's credentials). Those credentials are for
// this hop: they are taken off before the request is forwarded. ACK and
// CANCEL are never challenged (§22.1: they cannot be resubmitted); nor are
// requests from foreign domains for our users; a request for a foreign domain
// (--foreign-domains forward) is, from anyone.
// It answers itself and reports false when r may not go on.
func (p *Proxy) authorize(r *sipbus.Request) bool {
	if p.auth == nil || r.To().Params.Has("tag") {
		return true
	}
	from := r.From().Address
	// A request for a domain not ours, forwarded by RFC 3263, is challenged
	// whatever its From says: else any From would make the lab an open relay.
	foreign := p.dns != nil && !p.ours(r, r.Recipient.Host, r.Recipient.Port)
	if !foreign && !p.ours(r, from.Host, from.Port) {
		return true
	}
	ctx, cancel := p.ctx() // only here: no timer per request when --auth is off
	defer cancel()
	now := p.clock.Now()
	user, v, err := p.auth.Check(ctx, auth.Proxy, r.Request, r.Remote, now, func(host string, port int) bool { return p.ours(r, host, port) })
	if err != nil {
		p.log.Error("authentication store failed", "error", err)
		p.reply(r, 500, "Server Internal Error", "authentication store unavailable", sip.NewHeader("Retry-After", "5"))
		return false
	}
	switch v {
	case auth.Locked:
		p.reply(r, 403, "Forbidden", "too many failed authentications; try again later")
		return false
	case auth.Challenge, auth.Stale:
		p.reply(r, 407, "Proxy Authentication Required", "", p.auth.Challenges(auth.Proxy, now, v == auth.Stale)...)
		return false
	}
	if user != from.User && !foreign {
		p.reply(r, 403, "Forbidden", fmt.Sprintf("credentials of %s used for a request from %s", user, from.User))
		return false
	}
	p.auth.Consume(auth.Proxy, r.Request)
	return true
}
