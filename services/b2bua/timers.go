package b2bua

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Session timers per leg (RFC 4028): with --b2bua-session-expires the b2bua
// is the refresher on both legs (refresher=uas towards the caller,
// refresher=uac towards the callee) and refreshes each itself at half the
// interval, with a re-INVITE offering the leg's session description again,
// unchanged. A leg whose refresh fails ends the call on both.

// interval is the session interval, 0 when off.
func (b *B2BUA) interval() time.Duration { return time.Duration(b.cfg.SessionExpires) * time.Second }

// due sets br's Due from its timers: the earlier of RefreshAt and EndAt.
func due(br *store.Bridge) {
	br.Due = br.EndAt
	if !br.RefreshAt.IsZero() && (br.Due.IsZero() || br.RefreshAt.Before(br.Due)) {
		br.Due = br.RefreshAt
	}
}

// sessionExpires is the Session-Expires a leg carries.
func (b *B2BUA) sessionExpires(refresher string) sip.Header {
	return sip.NewHeader("Session-Expires", strconv.Itoa(b.cfg.SessionExpires)+";refresher="+refresher)
}

// dueCall acts on a call the store handed this replica: it ends at
// --max-call-duration, or its session is refreshed on both legs.
func (b *B2BUA) dueCall(ctx context.Context, br *store.Bridge) {
	now := b.clock.Now()
	if !br.EndAt.IsZero() && !now.Before(br.EndAt) {
		b.hangUp(ctx, br, "", "max-call-duration")
		return
	}
	if br.RefreshAt.IsZero() || now.Before(br.RefreshAt) {
		// Handed out early (another replica's clock runs ahead): due again.
		_, _ = store.RetryBridge(ctx, b.bridges, br.ID, func(br *store.Bridge) error { due(br); return nil })
		return
	}
	// Take both legs' CSeqs and mark the refresh as the offer in progress
	// (the parties' own re-INVITEs get 491 meanwhile).
	var cseqA, cseqB uint32
	br, err := store.RetryBridge(ctx, b.bridges, br.ID, func(br *store.Bridge) error {
		if br.Updating != "" {
			br.RefreshAt = now.Add(time.Second) // a relayed offer is under way: soon again
			due(br)
			return nil
		}
		br.Updating = "b2bua"
		br.A.LocalCSeq++
		br.B.LocalCSeq++
		cseqA, cseqB = br.A.LocalCSeq, br.B.LocalCSeq
		br.RefreshAt = now.Add(b.interval() / 2)
		br.Expires = now.Add(forgetAfter) // a call kept up is never forgotten
		due(br)
		return nil
	})
	if err != nil || cseqA == 0 {
		return
	}
	go b.refresh(br, cseqA, cseqB)
}

// refresh sends each leg its re-INVITE; a leg that refuses it or does not
// answer ends the call (RFC 4028 §10: the session expired).
func (b *B2BUA) refresh(br *store.Bridge, cseqA, cseqB uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	ok := true
	for _, leg := range []struct {
		leg       store.Leg
		cseq      uint32
		refresher string
	}{{br.A, cseqA, "uac"}, {br.B, cseqB, "uac"}} { // in its re-INVITE the b2bua is the UAC on both legs
		req, err := legDialog(leg.leg, b.userAgent).Request(sip.INVITE, leg.cseq, "application/sdp", []byte(leg.leg.LocalSDP))
		if err != nil {
			ok = false
			break
		}
		req.AppendHeader(b.sessionExpires(leg.refresher))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		peer := leg.leg
		res, err := b.send.Invite(ctx, req, legVia(leg.leg), func(res *sip.Response) (*sip.Request, error) {
			if ct := res.Contact(); ct != nil {
				peer.RemoteTarget = ct.Address.String()
			}
			return legDialog(peer, b.userAgent).Request(sip.ACK, leg.cseq, "", nil)
		}, nil)
		if err != nil || (res.StatusCode >= 300 && res.StatusCode != 491) {
			ok = false
			break
		}
	}
	cc, ccancel := context.WithTimeout(context.Background(), storeTimeout)
	defer ccancel()
	if !ok {
		b.hangUp(cc, br, "", "session-expired")
		return
	}
	_, _ = store.RetryBridge(cc, b.bridges, br.ID, func(br *store.Bridge) error {
		if br.Updating == "b2bua" {
			br.Updating = ""
		}
		return nil
	})
}
