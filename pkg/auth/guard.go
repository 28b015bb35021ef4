package auth

import (
	"context"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
)

// Guard is --auth for a role that answers requests itself (the uas, the
// events role): a request out of a dialog of a guarded method must carry
// our realm's Authorization (RFC 3261 §22.2), or it gets 401 with the
// challenges; 403 once its source is locked out. The registrar and the proxy
// challenge on their own (their 401 and 407 carry more: which AOR, whose
// From).
type Guard struct {
	Auth  *Authenticator // nil: every request goes on
	Clock clockwork.Clock
	IDs   *ids.Generator
	Agent string // the Warning agent of a refusal
	Log   *slog.Logger
}

// guardTimeout bounds the store round trips of one check.
const guardTimeout = 5 * time.Second

// Wrap guards every method of handlers but ACK, CANCEL and OPTIONS: the
// first two cannot be resubmitted with credentials (§22.1), the last is how
// a phone or a monitor asks what is here.
func (g *Guard) Wrap(handlers map[string]sipbus.Handler) map[string]sipbus.Handler {
	if g.Auth == nil {
		return handlers
	}
	out := make(map[string]sipbus.Handler, len(handlers))
	for m, h := range handlers {
		if m == "ACK" || m == "CANCEL" || m == "OPTIONS" {
			out[m] = h
			continue
		}
		out[m] = func(r *sipbus.Request) {
			if g.let(r) {
				h(r)
			}
		}
	}
	return out
}

// let answers r itself and reports false when it may not go on.
func (g *Guard) let(r *sipbus.Request) bool {
	if r.To().Params.Has("tag") && r.Method != sip.PUBLISH {
		// In a dialog its first request was let into: the handlers refuse
		// (481) a dialog that does not exist. A PUBLISH is never in one
		// (RFC 3903 §4): a To tag on it earns no pass.
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	now := g.Clock.Now()
	_, v, err := g.Auth.Check(ctx, Server, r.Request, r.Remote, now, nil)
	var res *sip.Response
	switch {
	case err != nil:
		g.Log.Error("authentication store failed", "error", err)
		res = sipmsg.Refusal(r.Request, 500, "Server Internal Error", g.Agent, "authentication store unavailable", g.IDs, sip.NewHeader("Retry-After", "5"))
	case v == Locked:
		res = sipmsg.Refusal(r.Request, 403, "Forbidden", g.Agent, "too many failed authentications; try again later", g.IDs)
	case v == Challenge || v == Stale:
		res = sipmsg.Refusal(r.Request, 401, "Unauthorized", g.Agent, "", g.IDs, g.Auth.Challenges(Server, now, v == Stale)...)
	default:
		return true
	}
	if err := r.Respond(res); err != nil {
		g.Log.Warn("refusal not sent", "code", res.StatusCode, "error", err)
	}
	return false
}
