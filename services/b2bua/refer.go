package b2bua

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// refer carries out a blind transfer asked by either party (RFC 3515, RFC
// 5589 §6): 202, then the b2bua calls the Refer-To target with the other
// party's (the transferee's) session description. The original call stays
// up until the target answers; then the transferee is re-INVITEd with the
// target's description, the call is re-bridged to the target, the referrer
// hears "200 OK" in its last NOTIFY and gets BYE. A target that does not
// answer leaves the call as it was, the referrer told why. With
// --enable-refer=false a REFER gets 603.
func (b *B2BUA) refer(r *sipbus.Request) {
	if !b.enableRefer {
		b.refuse(r, 603, "Decline", "transfers are off: --enable-refer=false")
		return
	}
	c, cancel := ctx()
	defer cancel()
	br, s, ok := b.inCallOrRefuse(c, r)
	if !ok {
		return
	}
	h := r.GetHeader("Refer-To")
	if h == nil {
		b.refuse(r, 400, "Bad Request", "REFER without Refer-To (RFC 3515 §2.4.1)")
		return
	}
	var target sip.Uri
	v := strings.TrimSpace(h.Value())
	if i, j := strings.IndexByte(v, '<'), strings.IndexByte(v, '>'); i >= 0 && j > i {
		v = v[i+1 : j]
	}
	if i := strings.IndexByte(v, '?'); i >= 0 {
		v = v[:i] // an attended transfer's Replaces: not built, the target is called plainly
	}
	if err := sip.ParseUri(v, &target); err != nil {
		b.refuse(r, 400, "Bad Request", "Refer-To: not a SIP URI")
		return
	}
	aor, _, err := sipmsg.AddressOfRecord(target)
	if err != nil {
		b.refuse(r, 400, "Bad Request", "Refer-To: "+err.Error())
		return
	}
	bindings, err := b.loc.Lookup(c, aor, b.clock.Now())
	if err != nil || len(bindings) == 0 {
		// Only registered users: a transfer is no way to have the lab call
		// an arbitrary address.
		b.refuse(r, 404, "Not Found", aor+" has no registered contact")
		return
	}
	_, err = store.RetryBridge(c, b.bridges, br.ID, func(br *store.Bridge) error {
		if br.Transferring != "" || br.State != store.BridgeConfirmed {
			return errTransferring
		}
		br.Transferring = string(s)
		return nil
	})
	if err != nil {
		b.refuse(r, 491, "Request Pending", "a transfer of this call is under way", sip.NewHeader("Retry-After", "1"))
		return
	}
	b.respond(r, sip.NewResponseFromRequest(r.Request, 202, "Accepted", nil))
	go b.transfer(br.ID, s, aor, bindings[0])
}

var errTransferring = errors.New("b2bua: a transfer is under way")

// referrerGone marks a transfer whose referrer hung up meanwhile.
const referrerGone = "gone"

// endTransfer clears the call's transfer mark and says whether the
// referrer hung up during it.
func (b *B2BUA) endTransfer(id string) (gone bool) {
	cc, cancel := ctx()
	defer cancel()
	_, _ = store.RetryBridge(cc, b.bridges, id, func(br *store.Bridge) error {
		gone = br.Transferring == referrerGone
		br.Transferring = ""
		return nil
	})
	return gone
}

// transfer calls the target for the party on side referrer's behalf and
// re-bridges on its answer.
func (b *B2BUA) transfer(id string, referrer side, target string, bd store.Binding) {
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout+storeTimeout)
	defer cancel()
	// Not waited for: a referrer that hung up meanwhile must not hold up the
	// target's INVITE (RFC 5589 §6).
	br, err := b.bridges.Get(ctx, id)
	if err != nil {
		return
	}
	from, other := legs(br, referrer) // the referrer's leg and the transferee's
	referrerCall := from.CallID
	go func() {
		nctx, cancel := context.WithTimeout(context.Background(), storeTimeout+sip.Timer_F)
		defer cancel()
		b.notifyReferrer(nctx, id, referrer, referrerCall, "SIP/2.0 100 Trying", false)
	}()
	// The new leg: the b2bua's tag (the call's id) in a dialog of its own.
	leg := store.Leg{CallID: b.ids.CallID(""), LocalTag: id, LocalURI: other.RemoteURI, RemoteURI: "<" + target + ">",
		RemoteTarget: bd.Contact, RouteSet: bd.Path, LocalCSeq: 1, Local: from.Local}
	via := uac.Via{Edge: from.Edge}
	if bd.Flow != "" && (!strings.EqualFold(bd.Transport, "udp") || bd.RegID != 0) {
		via, leg.Transport = uac.Via{Edge: bd.Edge, Flow: bd.Flow}, strings.ToLower(bd.Transport)
	}
	inv, err := legDialog(leg, b.userAgent).Request(sip.INVITE, 1, "application/sdp", []byte(from.LocalSDP))
	if err != nil {
		b.notifyReferrer(ctx, id, referrer, referrerCall, "SIP/2.0 500 Server Internal Error", true)
		return
	}
	var answered *sip.Response
	res, err := b.send.Invite(ctx, inv, via, func(res *sip.Response) (*sip.Request, error) {
		peer := leg
		peer.RemoteTag = tagOf(res.To().Params)
		if ct := res.Contact(); ct != nil {
			peer.RemoteTarget = ct.Address.String()
		}
		return legDialog(peer, b.userAgent).Request(sip.ACK, 1, "", nil)
	}, nil)
	if err != nil || !res.IsSuccess() {
		status := "SIP/2.0 408 Request Timeout"
		if err == nil {
			status = "SIP/2.0 " + strconv.Itoa(res.StatusCode) + " " + res.Reason
		}
		nctx, ncancel := context.WithTimeout(context.Background(), storeTimeout+sip.Timer_F)
		defer ncancel()
		if b.endTransfer(id) {
			if br, err := b.bridges.Get(nctx, id); err == nil {
				b.hangUp(nctx, br, referrer, "transfer failed") // the referrer left: nobody is left for the transferee
			}
			return
		}
		b.notifyReferrer(nctx, id, referrer, referrerCall, status, true)
		return
	}
	answered = res.Response
	leg.RemoteTag = tagOf(answered.To().Params)
	if ct := answered.Contact(); ct != nil {
		leg.RemoteTarget = ct.Address.String()
	}
	leg.RouteSet = nil
	rr := answered.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		leg.RouteSet = append(leg.RouteSet, rr[i].Value())
	}
	leg.Edge, leg.Flow = res.Edge, via.Flow
	leg.LocalSDP = from.LocalSDP // what the target was given: the transferee's

	// Re-bridge: the referrer's slot is the target's leg now; the
	// transferee is offered the target's description.
	var cseq uint32
	var ended store.Leg
	// The steps after the answer each have a context of their own: a target
	// that answered late must not leave the transferee without its SDP.
	ctx, cancel = context.WithTimeout(context.Background(), relayTimeout+storeTimeout)
	defer cancel()
	gone := false
	br, err = store.RetryBridge(ctx, b.bridges, id, func(br *store.Bridge) error {
		f, o := legs(br, referrer)
		ended = *f
		*f = leg
		gone = br.Transferring == referrerGone
		br.Transferring = ""
		br.Expires = b.clock.Now().Add(forgetAfter)
		o.LocalCSeq++
		cseq = o.LocalCSeq
		o.LocalSDP = string(answered.Body())
		return nil
	})
	if err != nil {
		b.endLeg(ctx, leg, "transferee gone")
		return
	}
	_, transferee := legs(br, referrer)
	reinv, err := legDialog(*transferee, b.userAgent).Request(sip.INVITE, cseq, "application/sdp", answered.Body())
	if err == nil {
		peer := *transferee
		res, err := b.send.Invite(ctx, reinv, legVia(peer), func(res *sip.Response) (*sip.Request, error) {
			if ct := res.Contact(); ct != nil {
				peer.RemoteTarget = ct.Address.String()
			}
			return legDialog(peer, b.userAgent).Request(sip.ACK, cseq, "", nil)
		}, nil)
		if err != nil || res.StatusCode == 481 || res.StatusCode == 408 {
			// The transferee is gone: the target's call ends too.
			b.hangUp(ctx, br, "", "transferee gone")
			if !gone {
				b.notifyLeg(ctx, ended, "SIP/2.0 200 OK", true)
				b.endLeg(ctx, ended, "")
			}
			return
		}
	}
	if !gone {
		b.notifyLeg(ctx, ended, "SIP/2.0 200 OK", true)
		b.endLeg(ctx, ended, "")
	}
	b.announce(wire.BridgeEvent{Event: wire.EventCallTransferred, ID: id, CallerCallID: br.A.CallID, CalleeCallID: br.B.CallID,
		From: br.A.RemoteURI, To: br.A.LocalURI, Callee: leg.RemoteTarget})
}

// notifyReferrer reports the transfer's progress to the party on side s of
// call id, in its dialog (RFC 3515 §2.4.5: a sipfrag of the target's status)
// — if that side is still the referrer's (callID): once the target's leg
// took its place, there is nobody to tell.
func (b *B2BUA) notifyReferrer(ctx context.Context, id string, s side, callID, status string, final bool) {
	var leg store.Leg
	_, err := store.RetryBridge(ctx, b.bridges, id, func(br *store.Bridge) error {
		l, _ := legs(br, s)
		if l.CallID != callID {
			return errNotInCall
		}
		l.LocalCSeq++
		leg = *l
		return nil
	})
	if err != nil {
		return
	}
	leg.LocalCSeq-- // notifyLeg takes the next
	b.notifyLeg(ctx, leg, status, final)
}

// notifyLeg sends leg's peer a refer NOTIFY with status (leg.LocalCSeq+1).
func (b *B2BUA) notifyLeg(ctx context.Context, leg store.Leg, status string, final bool) {
	req, err := legDialog(leg, b.userAgent).Request(sip.NOTIFY, leg.LocalCSeq+1, "message/sipfrag;version=2.0", []byte(status+"\r\n"))
	if err != nil {
		return
	}
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if _, err := b.send.Do(ctx, req, legVia(leg), nil); err != nil {
		b.log.Info("refer NOTIFY not answered", "error", err)
	}
}

// endLeg sends BYE on a leg no longer in a call (the referrer's; a target
// whose transferee went away). Its CSeq follows the NOTIFY sent last.
func (b *B2BUA) endLeg(ctx context.Context, leg store.Leg, reason string) {
	bye, err := legDialog(leg, b.userAgent).Request(sip.BYE, leg.LocalCSeq+2, "", nil)
	if err != nil {
		return
	}
	if reason != "" {
		bye.AppendHeader(sip.NewHeader("Reason", `SIP;cause=200;text="`+reason+`"`))
	}
	if _, err := b.send.Do(ctx, bye, legVia(leg), nil); err != nil && !errors.Is(err, context.Canceled) {
		b.log.Info("BYE not answered", "error", err)
	}
}
