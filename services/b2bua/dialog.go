package b2bua

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// side is which leg a request in a call came from.
type side string

const (
	sideA side = "a" // the caller's
	sideB side = "b" // the callee's
)

// legs are a bridge's leg on side s and the other one.
func legs(br *store.Bridge, s side) (from, to *store.Leg) {
	if s == sideA {
		return &br.A, &br.B
	}
	return &br.B, &br.A
}

var errNotInCall = errors.New("b2bua: no such call")

// inCall finds the call r is a request of, and its side: the To tag is the
// b2bua's on both legs, the Call-ID and From tag say which one.
func (b *B2BUA) inCall(ctx context.Context, r *sipbus.Request) (*store.Bridge, side, error) {
	tag, _ := r.To().Params.Get("tag")
	if tag == "" {
		return nil, "", errNotInCall
	}
	br, err := b.bridges.Get(ctx, tag)
	if errors.Is(err, store.ErrBridgeNotFound) {
		return nil, "", errNotInCall
	}
	if err != nil {
		return nil, "", err
	}
	fromTag := tagOf(r.From().Params)
	switch callID := r.CallID().Value(); {
	case callID == br.A.CallID && fromTag == br.A.RemoteTag:
		return br, sideA, nil
	case callID == br.B.CallID && fromTag == br.B.RemoteTag:
		return br, sideB, nil
	}
	return nil, "", errNotInCall
}

// inCallOrRefuse is inCall, answering 481 or 500 itself when there is no call.
func (b *B2BUA) inCallOrRefuse(ctx context.Context, r *sipbus.Request) (*store.Bridge, side, bool) {
	br, s, err := b.inCall(ctx, r)
	switch {
	case errors.Is(err, errNotInCall):
		b.refuse(r, 481, "Call/Transaction Does Not Exist", "no call of the b2bua's has this dialog")
		return nil, "", false
	case err != nil:
		b.log.Error("call lookup", "error", err)
		b.refuse(r, 500, "Server Internal Error", "call store unavailable")
		return nil, "", false
	}
	return br, s, true
}

// ack takes the caller's ACK of the 200: with a late offer it carries the
// answer, which goes into the B leg's ACK; otherwise B's 2xx was ACKed
// already and there is nothing to relay. (An ACK of a relayed re-INVITE's
// 2xx was sent by the uac side when that 2xx came.)
func (b *B2BUA) ack(r *sipbus.Request) {
	c, cancel := ctx()
	defer cancel()
	br, s, err := b.inCall(c, r)
	if err != nil || s != sideA || br.Acked || r.CSeq().SeqNo != br.A.RemoteCSeq {
		return
	}
	ct := ""
	if h := r.ContentType(); h != nil {
		ct = h.Value()
	}
	br, err = store.RetryBridge(c, b.bridges, br.ID, func(br *store.Bridge) error {
		if br.Acked {
			return errAcked
		}
		br.Acked, br.AckBody, br.AckType = true, string(r.Body()), ct
		br.B.LocalSDP = string(r.Body()) // the caller's answer is what the callee was given
		return nil
	})
	if err != nil {
		return
	}
	b.sendACK(br, ct, r.Body())
}

var errAcked = errors.New("b2bua: ACKed already")

// bye ends the call from either side: 200 at once, then BYE on the other leg.
func (b *B2BUA) bye(r *sipbus.Request) {
	c, cancel := ctx()
	defer cancel()
	br, s, ok := b.inCallOrRefuse(c, r)
	if !ok {
		return
	}
	b.respond(r, sip.NewResponseFromRequest(r.Request, 200, "OK", nil))
	if br.State == store.BridgeEarly {
		// The caller gave up in the early dialog (RFC 3261 §15.1.2): its
		// INVITE ends as if CANCELled, by the replica holding it.
		if br.Replica == b.replica {
			b.cancelHeld(br.ID)
		} else if br.Replica != "" {
			if err := b.publish(&nats.Msg{Subject: wire.Replica(wire.RoleB2BUA, br.Replica), Data: []byte(r.String())}); err != nil {
				b.log.Warn("early BYE not passed to the replica holding the INVITE", "error", err)
			}
		}
		return
	}
	if br.Transferring == string(s) {
		// The referrer hung up after its REFER (RFC 5589 §6): its leg
		// alone ends; the transfer goes on for the transferee.
		_, _ = store.RetryBridge(c, b.bridges, br.ID, func(br *store.Bridge) error {
			if br.Transferring == string(s) {
				br.Transferring = referrerGone
			}
			return nil
		})
		return
	}
	b.hangUp(c, br, s, "")
}

// hangUp ends br: the one replica whose Delete finds it sends BYE on the
// legs other than from's (both when from is empty: --max-call-duration),
// with reason, when set, in an RFC 3326 Reason header.
func (b *B2BUA) hangUp(ctx context.Context, br *store.Bridge, from side, reason string) {
	ended, err := b.bridges.Delete(ctx, br.ID)
	if err != nil {
		return // ended meanwhile, by the other side or another replica
	}
	for _, s := range []side{sideA, sideB} {
		if s == from {
			continue
		}
		leg, _ := legs(ended, s)
		bye, err := legDialog(*leg, b.userAgent).Request(sip.BYE, leg.LocalCSeq+1, "", nil)
		if err != nil {
			b.log.Warn("BYE not built", "id", ended.ID, "error", err)
			continue
		}
		if reason != "" {
			bye.AppendHeader(sip.NewHeader("Reason", `SIP;cause=200;text="`+reason+`"`))
		}
		if _, err := b.send.Do(ctx, bye, legVia(*leg), nil); err != nil {
			b.log.Info("BYE not answered", "id", ended.ID, "leg", string(s), "error", err)
		}
	}
	now := b.clock.Now()
	by := map[side]string{sideA: "caller", sideB: "callee", "": "b2bua"}[from]
	b.announce(wire.BridgeEvent{Event: wire.EventCallEnded, ID: ended.ID, CallerCallID: ended.A.CallID, CalleeCallID: ended.B.CallID,
		From: ended.A.RemoteURI, To: ended.A.LocalURI, Callee: ended.B.RemoteTarget, EndedBy: by, Reason: reason,
		CallerLegMS: now.Sub(ended.Created).Milliseconds(), CalleeLegMS: now.Sub(ended.Answered).Milliseconds()})
}

// relay passes a request inside the call (re-INVITE, UPDATE, INFO,
// MESSAGE) to the other leg, in that dialog, and its final response back.
// A re-INVITE or an UPDATE while one is relayed the other way is glare:
// 491 (RFC 3261 §14.1, RFC 3311 §5.2).
func (b *B2BUA) relay(r *sipbus.Request) {
	c, cancel := ctx()
	defer cancel()
	br, s, ok := b.inCallOrRefuse(c, r)
	if !ok {
		return
	}
	offer := r.IsInvite() || r.Method == sip.UPDATE
	var cseq uint32
	var newOffer []string // what each side was given, once an offer was answered
	clearOffer := func() {}
	br, err := store.RetryBridge(c, b.bridges, br.ID, func(br *store.Bridge) error {
		from, to := legs(br, s)
		if offer && br.Updating == string(s) {
			return errOwnOffer
		}
		if offer && br.Updating != "" {
			return errGlare
		}
		if offer {
			br.Updating = string(s)
		}
		from.RemoteCSeq = max(from.RemoteCSeq, r.CSeq().SeqNo)
		to.LocalCSeq++
		cseq = to.LocalCSeq
		br.Expires = b.clock.Now().Add(forgetAfter)
		return nil
	})
	if err == nil && offer {
		// Cleared however the relay ends, with a context of its own: the
		// relay may outlast the request's.
		var once sync.Once
		clearOffer = func() {
			once.Do(func() {
				cc, cancel := ctx()
				defer cancel()
				_, _ = store.RetryBridge(cc, b.bridges, br.ID, func(br *store.Bridge) error {
					if br.Updating == string(s) {
						br.Updating = ""
					}
					if newOffer != nil {
						from, to := legs(br, s)
						to.LocalSDP, from.LocalSDP = newOffer[0], newOffer[1]
					}
					return nil
				})
			})
		}
		defer clearOffer()
	}
	switch {
	case errors.Is(err, errOwnOffer):
		// A second offer while this side's first is relayed (RFC 3261 §14.2).
		b.refuse(r, 500, "Server Internal Error", "an offer of this side's is still being relayed", sip.NewHeader("Retry-After", "1"))
		return
	case errors.Is(err, errGlare):
		b.refuse(r, 491, "Request Pending", "an offer is being relayed the other way", sip.NewHeader("Retry-After", "1"))
		return
	case errors.Is(err, store.ErrBridgeNotFound):
		b.refuse(r, 481, "Call/Transaction Does Not Exist", "the call ended")
		return
	case err != nil:
		b.log.Error("relay in call", "error", err)
		b.refuse(r, 500, "Server Internal Error", "call store unavailable")
		return
	}
	_, to := legs(br, s)
	ct := ""
	if h := r.ContentType(); h != nil {
		ct = h.Value()
	}
	req, err := legDialog(*to, b.userAgent).Request(r.Method, cseq, ct, r.Body())
	if err != nil {
		b.refuse(r, 500, "Server Internal Error", "the other leg's request not built: "+err.Error())
		return
	}
	for _, name := range relayed {
		for _, h := range r.GetHeaders(name) {
			req.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	if r.IsInvite() {
		b.respond(r, sip.NewResponseFromRequest(r.Request, 100, "Trying", nil))
	}
	rc, rcancel := context.WithTimeout(context.Background(), relayTimeout)
	defer rcancel()
	var res uac.Response
	if r.IsInvite() {
		res, err = b.send.Invite(rc, req, legVia(*to), func(res *sip.Response) (*sip.Request, error) {
			peer := *to
			if ct := res.Contact(); ct != nil {
				peer.RemoteTarget = ct.Address.String()
			}
			return legDialog(peer, b.userAgent).Request(sip.ACK, cseq, "", nil)
		}, nil)
	} else {
		res, err = b.send.Do(rc, req, legVia(*to), nil)
	}
	if offer && err == nil && res.IsSuccess() && len(r.Body()) > 0 && len(res.Body()) > 0 {
		newOffer = []string{string(r.Body()), string(res.Body())}
	}
	// The offer is over before its answer goes back: a request the sender
	// makes next (an UPDATE right after a re-INVITE) is no glare.
	clearOffer()
	if err != nil {
		b.refuse(r, 408, "Request Timeout", "the other leg did not answer: "+err.Error())
		return
	}
	out := sip.NewResponseFromRequest(r.Request, res.StatusCode, res.Reason, res.Body())
	if h := res.ContentType(); h != nil && len(res.Body()) > 0 {
		out.AppendHeader(sip.NewHeader("Content-Type", h.Value()))
	}
	if r.IsInvite() || r.Method == sip.UPDATE {
		out.AppendHeader(sip.NewHeader("Contact", "<"+contact(*legOf(br, s))+">"))
	}
	for _, name := range endToEnd {
		for _, h := range res.GetHeaders(name) {
			out.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	b.respond(r, out)
}

var (
	errGlare    = errors.New("b2bua: offer in progress the other way")
	errOwnOffer = errors.New("b2bua: this side's offer still in progress")
)

// relayTimeout bounds a relayed request: a re-INVITE the other side lets ring
// is answered 408 after it.
const relayTimeout = 32 * time.Second

// relayed are the request headers that go across with a relayed request.
var relayed = []string{"Info-Package", "Content-Disposition", "Session-Expires", "Min-SE", "Subject", "Event"}

func legOf(br *store.Bridge, s side) *store.Leg {
	from, _ := legs(br, s)
	return from
}
