package uas

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// prackWait bounds how long a reliable provisional is retransmitted without a
// PRACK before the INVITE is refused (RFC 3262 §3: 64·T1).
var prackWait = 64 * sip.T1

// call is an INVITE this replica holds while it rings (answer delay, PRACK).
type call struct {
	r         *sipbus.Request
	id        string
	cancelled chan struct{}
	pracked   chan uint32

	mu        sync.Mutex
	cancelSet bool
	answered  bool
}

// hold makes c findable while it rings: by the INVITE's transaction key for its
// CANCEL (the edge's Siphon-Tx), by its dialog for a PRACK.
func (u *UAS) hold(c *call) {
	if c.r.Tx != "" {
		u.ringing.Store(c.r.Tx, c)
	}
	u.pracks.Store(c.id, c)
}

// release forgets c once it can no longer be cancelled.
func (u *UAS) release(c *call) {
	if c.r.Tx != "" {
		u.ringing.CompareAndDelete(c.r.Tx, c)
	}
	u.pracks.CompareAndDelete(c.id, c)
}

// cancel marks c cancelled, once. A call already answered stays answered:
// the 2xx that crossed the CANCEL reaches the caller.
func (c *call) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cancelSet && !c.answered {
		c.cancelSet = true
		close(c.cancelled)
	}
}

// answer marks c answered unless it was cancelled first.
func (c *call) answer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelSet {
		return false
	}
	c.answered = true
	return true
}

// negotiationError is an offer/answer failure and the response it gets.
type negotiationError struct {
	code        int
	reason, why string
	warning     sip.Header
	extra       []sip.Header
}

func (e *negotiationError) Error() string { return e.why }

// invite answers an INVITE: a new call, or a re-INVITE inside a dialog.
func (u *UAS) invite(r *sipbus.Request) {
	if _, inDialog := inDialogID(r); inDialog {
		u.reinvite(r)
		return
	}
	if u.refuseExtensions(r) {
		return
	}
	if r.Contact() == nil {
		u.reply(r, 400, "Bad Request", "an INVITE must carry a Contact (RFC 3261 §8.1.1.8)")
		return
	}
	st, ok := u.negotiateTimer(r)
	if !ok {
		return
	}
	if !u.cfg.AutoAcceptCalls {
		u.reply(r, 486, "Busy Here", "calls are refused: --auto-accept-calls=false")
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	var replaced *store.Dialog
	if h := r.GetHeader("Replaces"); h != nil {
		var err error
		if replaced, err = u.replaces(ctx, h.Value()); err != nil {
			u.reply(r, 481, "Call/Transaction Does Not Exist", err.Error())
			return
		}
	}
	d := u.newDialog(r, u.ids.Tag())
	if err := u.negotiate(d, r, false); err != nil {
		u.refuseOffer(r, err)
		return
	}
	u.applyTimer(d, st)
	reliable := u.cfg.EnablePRACK && (has(r.Request, "Require", "100rel") || has(r.Request, "Supported", "100rel"))
	if !reliable && u.cfg.AnswerDelay == 0 {
		// Answered at once: the dialog is stored confirmed in one trip.
		d.State = store.DialogConfirmed
		if err := u.dialogs.Create(ctx, d); err != nil {
			u.answerInDialog(r, err)
			return
		}
		u.respond(r, sip.NewResponseFromRequest(r.Request, 100, "Trying", nil))
		u.respond(r, u.provisional(r, d, 0))
		u.respond(r, u.ok(r, d, st))
		u.announce(dialogEvent(wire.EventCallStarted, d))
		u.endReplaced(replaced, d)
		return
	}
	d.State, d.Replica = store.DialogEarly, u.replica
	if reliable {
		d.RSeq = firstRSeq(d.LocalTag)
	}
	// An unanswered early dialog is the sweep's to clear if this replica dies.
	d.Due = u.now().Add(u.cfg.AnswerDelay + prackWait + time.Minute)
	if err := u.dialogs.Create(ctx, d); err != nil {
		u.answerInDialog(r, err)
		return
	}
	c := &call{r: r, id: d.ID, cancelled: make(chan struct{}), pracked: make(chan uint32, 4)}
	u.hold(c)
	u.respond(r, sip.NewResponseFromRequest(r.Request, 100, "Trying", nil))
	go u.ring(c, d, st, replaced)
}

// ring sends the provisional response, waits for its PRACK and the answer delay
// (or a CANCEL), then answers.
func (u *UAS) ring(c *call, d *store.Dialog, st sessionTimer, replaced *store.Dialog) {
	defer u.release(c)
	answerAt := u.clock.NewTimer(u.cfg.AnswerDelay)
	defer answerAt.Stop()
	prov := u.provisional(c.r, d, d.RSeq)
	u.respond(c.r, prov)
	if d.RSeq != 0 && !u.awaitPRACK(c, d, prov) {
		return
	}
	select {
	case <-c.cancelled:
		u.cancelled(c, d)
		return
	case <-answerAt.Chan():
	}
	if !c.answer() {
		u.cancelled(c, d)
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	stored, err := store.Retry(ctx, u.dialogs, c.id, func(d *store.Dialog) error {
		d.State, d.Replica = store.DialogConfirmed, ""
		if d.SessionExpires == 0 {
			u.keepAlive(d)
		} else {
			d.Refreshed = u.now() // the session timer runs from the 2xx (RFC 4028 §9)
			d.Due = sessionDue(d)
			d.Expires = d.Refreshed.Add(time.Duration(d.SessionExpires)*time.Second + time.Minute)
		}
		return nil
	})
	if err != nil {
		u.log.Warn("ringing call gone before its answer", "call_id", d.CallID, "error", err)
		return
	}
	u.respond(c.r, u.ok(c.r, stored, st))
	u.announce(dialogEvent(wire.EventCallStarted, stored))
	u.endReplaced(replaced, stored)
}

// awaitPRACK retransmits the reliable provisional prov over UDP (T1 doubling to
// T2) until its PRACK; with none in 64·T1 the INVITE gets a 5xx (RFC 3262 §3).
func (u *UAS) awaitPRACK(c *call, d *store.Dialog, prov *sip.Response) bool {
	giveUp := u.clock.NewTimer(prackWait)
	defer giveUp.Stop()
	interval := sip.T1
	resend := u.clock.NewTimer(interval)
	defer resend.Stop()
	resendC := resend.Chan()
	if d.Transport != "udp" {
		resend.Stop()
		resendC = nil // a reliable transport: nothing to retransmit
	}
	for {
		select {
		case rseq := <-c.pracked:
			if rseq == d.RSeq {
				return true
			}
		case <-c.cancelled:
			u.cancelled(c, d)
			return false
		case <-resendC:
			u.respond(c.r, prov)
			interval = min(2*interval, sip.T2)
			resend.Reset(interval)
		case <-giveUp.Chan():
			ctx, cancel := u.ctx()
			defer cancel()
			_, _ = u.dialogs.Delete(ctx, c.id)
			res := sipmsg.NewResponse(c.r.Request, 504, "Server Time-out", nil, u.ids)
			res.To().Params.Add("tag", d.LocalTag)
			res.AppendHeader(sipmsg.Warning("siphon-uas", "no PRACK for the reliable provisional response in 64*T1"))
			u.respond(c.r, res)
			return false
		}
	}
}

// cancelled ends a call its caller cancelled (RFC 3261 §9.2): the edge has
// answered the CANCEL 200; the INVITE gets 487 with the tag of the
// provisional responses, and the early dialog is dropped.
func (u *UAS) cancelled(c *call, early *store.Dialog) {
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := u.dialogs.Delete(ctx, c.id)
	res := sipmsg.NewResponse(c.r.Request, 487, "Request Terminated", nil, u.ids)
	res.To().Params.Add("tag", early.LocalTag)
	u.respond(c.r, res)
	if err == nil {
		u.announce(dialogEvent(wire.EventCallCancelled, d))
	}
}

// provisional is 180 Ringing, or 183 Session Progress with the answer when
// early media is on (--early-media) or asked for (P-Early-Media: supported, RFC
// 5009); reliable (RFC 3262) when rseq is not 0.
func (u *UAS) provisional(r *sipbus.Request, d *store.Dialog, rseq uint32) *sip.Response {
	var res *sip.Response
	asked := has(r.Request, "P-Early-Media", "supported")
	if (u.cfg.EarlyMedia || asked) && d.LocalSDP != "" && !d.OfferPending {
		res = u.dialogResponse(r, d, 183, "Session Progress", []byte(d.LocalSDP))
		if asked {
			res.AppendHeader(sip.NewHeader("P-Early-Media", "sendrecv"))
		}
	} else {
		res = u.dialogResponse(r, d, 180, "Ringing", nil)
	}
	if rseq != 0 {
		res.AppendHeader(sip.NewHeader("Require", "100rel"))
		res.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(rseq), 10)))
	}
	return res
}

// ok is the 200 to an INVITE (initial or re-), with the session description
// this side owes and the session timer.
func (u *UAS) ok(r *sipbus.Request, d *store.Dialog, st sessionTimer) *sip.Response {
	var body []byte
	if d.LocalSDP != "" {
		body = []byte(d.LocalSDP)
	}
	res := u.dialogResponse(r, d, 200, "OK", body)
	res.AppendHeader(sip.NewHeader("Allow", u.allowFor(r)))
	if u.supported != "" {
		res.AppendHeader(sip.NewHeader("Supported", u.supported))
	}
	for _, h := range timerHeaders(st) {
		res.AppendHeader(h)
	}
	return res
}

// dialogResponse is a response inside d: its tag, this UAS's Contact, and body
// as SDP.
func (u *UAS) dialogResponse(r *sipbus.Request, d *store.Dialog, code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(r.Request, code, reason, body)
	if to := res.To(); to != nil && tagOf(r.To()) == "" {
		to.Params.Add("tag", d.LocalTag) // replaces the random one sipgo put there
	}
	res.AppendHeader(contact(d))
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return res
}

// negotiate runs offer/answer (RFC 3264) for an INVITE, re-INVITE or UPDATE
// (update: no offer is made when the request has none). It records both sides
// in d and raises the o= version when this side's description changes.
func (u *UAS) negotiate(d *store.Dialog, r *sipbus.Request, update bool) error {
	if len(u.caps.order) == 0 {
		return nil // --sdp-profile none: signalling only
	}
	body := r.Body()
	if len(body) == 0 {
		if update {
			return nil
		}
		// This side offers (late offer, or a re-INVITE without SDP): the same
		// description again, the answer comes in the ACK.
		if d.LocalSDP == "" {
			offer, err := u.caps.Offer(mediaHost(d), d.SDPSession, d.SDPVersion)
			if err != nil {
				return err
			}
			d.LocalSDP = string(offer)
		}
		d.OfferPending = true
		return nil
	}
	if ct := header(r.Request, "Content-Type", "c"); ct != "" && !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/sdp") {
		return &negotiationError{code: 415, reason: "Unsupported Media Type", why: "body " + ct + " is not application/sdp",
			extra: []sip.Header{sip.NewHeader("Accept", accept)}}
	}
	answer, err := u.caps.Answer(body, mediaHost(d), d.SDPSession, d.SDPVersion)
	if err == nil && d.LocalSDP != "" && !bytes.Equal(answer, []byte(d.LocalSDP)) {
		answer, err = u.caps.Answer(body, mediaHost(d), d.SDPSession, d.SDPVersion+1)
		d.SDPVersion++
	}
	switch {
	case errors.Is(err, ErrNoCommonMedia):
		return &negotiationError{code: 488, reason: "Not Acceptable Here", why: err.Error(),
			warning: sip.NewHeader("Warning", `305 siphon-uas "no offered codec is in the sdp-profile"`)}
	case errors.Is(err, ErrMalformedSDP):
		return &negotiationError{code: 400, reason: "Bad Request", why: err.Error()}
	case err != nil:
		return err
	}
	d.RemoteSDP, d.LocalSDP, d.OfferPending = string(body), string(answer), false
	return nil
}

// refuseOffer answers a request whose offer could not be taken.
func (u *UAS) refuseOffer(r *sipbus.Request, err error) {
	var ne *negotiationError
	if !errors.As(err, &ne) {
		u.log.Error("offer/answer failed", "error", err)
		u.reply(r, 500, "Server Internal Error", "could not build a session description")
		return
	}
	hdrs := ne.extra
	detail := ne.why
	if ne.warning != nil {
		hdrs, detail = append(hdrs, ne.warning), ""
	}
	u.reply(r, ne.code, ne.reason, detail, hdrs...)
}

// refuseChange answers a request that could not change the session: its offer,
// an offer crossing ours (491), or the dialog itself (481, 500).
func (u *UAS) refuseChange(r *sipbus.Request, err error) {
	var ne *negotiationError
	switch {
	case errors.As(err, &ne):
		u.refuseOffer(r, err)
	case errors.Is(err, errOfferPending):
		u.reply(r, 491, "Request Pending", err.Error())
	default:
		u.answerInDialog(r, err)
	}
}

// errOfferPending: an offer crossed this side's own (RFC 3261 §14.2: 491).
var errOfferPending = errors.New("an offer of this side is still unanswered")

// reinvite changes an established session (hold, resume, codec change, session
// refresh) and answers with the updated description.
func (u *UAS) reinvite(r *sipbus.Request) {
	if u.refuseExtensions(r) {
		return
	}
	st, ok := u.negotiateTimer(r)
	if !ok {
		return
	}
	id, _ := inDialogID(r)
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error {
		if err := u.takeRequest(d, r); err != nil {
			return err
		}
		// An offer of ours still open belonged to an earlier INVITE, which its
		// ACK ended (a UAC sends no INVITE before it): it went unanswered.
		d.OfferPending = false
		if err := u.negotiate(d, r, false); err != nil {
			return err
		}
		d.InviteCSeq = r.CSeq().SeqNo
		if c := r.Contact(); c != nil {
			d.RemoteTarget = c.Address.String()
		}
		u.applyTimer(d, st)
		return nil
	})
	if err != nil {
		u.refuseChange(r, err)
		return
	}
	u.respond(r, u.ok(r, d, st))
	if st.interval != 0 {
		u.announce(dialogEvent(wire.EventSessionRefreshed, d))
	}
}

// replaces finds the dialog a Replaces header names (RFC 3891 §3): this UAS's
// tag is its to-tag. Only a confirmed dialog can be replaced here.
func (u *UAS) replaces(ctx context.Context, value string) (*store.Dialog, error) {
	callID, params, _ := strings.Cut(value, ";")
	var toTag, fromTag string
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "to-tag":
			toTag = v
		case "from-tag":
			fromTag = v
		}
	}
	callID = strings.TrimSpace(callID)
	d, err := u.dialogs.Get(ctx, store.DialogID(callID, toTag))
	if err != nil || d.RemoteTag != fromTag {
		return nil, errors.New("Replaces names no dialog of this UAS: " + value)
	}
	if d.State != store.DialogConfirmed {
		return nil, errors.New("Replaces names an early dialog: " + value)
	}
	return d, nil
}

// endReplaced ends the dialog an INVITE with Replaces took over.
func (u *UAS) endReplaced(old, by *store.Dialog) {
	if old == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		defer cancel()
		u.hangUp(ctx, old, "replaced")
		ev := dialogEvent(wire.EventCallReplaced, old)
		ev.Reason = "replaced by " + by.CallID
		u.announce(ev)
	}()
}

// referHeaders are the headers a Refer-To's ?headers part may put in the
// transfer INVITE (RFC 3261 §19.1.5 lets a UA ignore the rest, and a Via,
// Call-ID or Content-Length from a URI must never reach the wire).
var referHeaders = map[string]string{
	"replaces": "Replaces", "subject": "Subject", "priority": "Priority",
	"alert-info": "Alert-Info", "call-info": "Call-Info",
}

// unescapeHeaders turns a URI's ?header=value part into header lines (RFC
// 3261 §19.1.1), as a Refer-To with Replaces carries them: only the headers
// above, and no value that would break the line.
func unescapeHeaders(q string) []sip.Header {
	var out []sip.Header
	for _, kv := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.PathUnescape(v)
		name, allowed := referHeaders[strings.ToLower(key)]
		if err1 == nil && err2 == nil && allowed && !strings.ContainsAny(val, "\r\n") {
			out = append(out, sip.NewHeader(name, val))
		}
	}
	return out
}
