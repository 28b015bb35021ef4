package uas

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// REFER (RFC 3515): the uas accepts with 202, places the call to the Refer-To
// target through the edge's send path, and reports its progress to the
// referrer in NOTIFYs carrying message/sipfrag, the last one terminating the
// implicit subscription. A Refer-To with Replaces (RFC 3891) makes it an
// attended transfer: the new INVITE carries that Replaces.

// referNotifyExpires is the subscription lifetime announced while it is active.
const referNotifyExpires = "60"

func (u *UAS) refer(r *sipbus.Request) {
	if !u.enableRefer {
		u.reply(r, 403, "Forbidden", "REFER is off: --enable-refer=false")
		return
	}
	id, ok := inDialogID(r)
	if !ok {
		u.reply(r, 403, "Forbidden", "REFER outside a dialog is not accepted; send it inside the call to transfer")
		return
	}
	values := r.GetHeaders("Refer-To")
	if len(values) == 0 {
		values = r.GetHeaders("r")
	}
	if len(values) != 1 {
		u.reply(r, 400, "Bad Request", "a REFER carries exactly one Refer-To (RFC 3515 §2.4.1)")
		return
	}
	target, extra, err := referTarget(values[0].Value())
	if err != nil {
		u.reply(r, 400, "Bad Request", err.Error())
		return
	}
	if !u.cfg.AllowPrivateReferTargets {
		if why := privateTarget(target); why != "" {
			u.reply(r, 403, "Forbidden", why+"; --allow-private-refer-targets permits it")
			return
		}
	}
	eventID := strconv.FormatUint(uint64(r.CSeq().SeqNo), 10)
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := u.record(ctx, r, id)
	if err != nil {
		u.answerInDialog(r, err)
		return
	}
	u.reply(r, 202, "Accepted", "")
	if referredBy := header(r.Request, "Referred-By", "b"); referredBy != "" {
		extra = append(extra, sip.NewHeader("Referred-By", referredBy))
	}
	go u.transfer(d, eventID, target, extra)
}

// referTarget splits a Refer-To value into the URI to call and the header
// lines its ?headers part asks for (Replaces for an attended transfer).
func referTarget(v string) (*sip.Uri, []sip.Header, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return nil, nil, errors.New("Refer-To " + strconv.Quote(v) + " has no closing >")
		}
		v = v[i+1 : i+j]
	}
	uri, headers, _ := strings.Cut(v, "?")
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil || u.Host == "" {
		return nil, nil, errors.New("Refer-To " + strconv.Quote(v) + " is not a SIP URI")
	}
	if !strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips") {
		return nil, nil, errors.New("Refer-To " + strconv.Quote(v) + ": only sip and sips targets can be called")
	}
	return &u, unescapeHeaders(headers), nil
}

// privateTarget says why target may not be called from a lab that others can
// point at (loopback, private, link-local: a REFER must not make the uas probe
// the network it runs in), or "" when it may.
func privateTarget(target *sip.Uri) string {
	ips := []net.IP{net.ParseIP(target.Host)}
	if ips[0] == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		found, err := net.DefaultResolver.LookupIP(ctx, "ip", target.Host)
		if err != nil {
			return "Refer-To host " + target.Host + " does not resolve"
		}
		ips = found
	}
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			return "Refer-To " + target.Host + " is a private or loopback address (" + ip.String() + ")"
		}
	}
	return ""
}

// transfer places the call REFER asked for and NOTIFYs the referrer of each
// step, in order: 100 Trying, each provisional response, the final one.
func (u *UAS) transfer(d *store.Dialog, eventID string, target *sip.Uri, extra []sip.Header) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	// NOTIFYs go out in order on their own goroutine: a referrer slow to answer
	// one must not hold up the transfer call.
	type note struct {
		frag  string
		final bool
	}
	notes := make(chan note, 16)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		for n := range notes {
			u.notifyRefer(ctx, d.ID, eventID, n.frag, n.final)
		}
	}()
	defer func() { close(notes); <-notified }()
	notes <- note{frag: "SIP/2.0 100 Trying"}
	callID, fromTag := u.ids.CallID(mediaHost(d)), u.ids.Tag()
	out := &store.Dialog{
		ID: store.DialogID(callID, fromTag), CallID: callID, LocalTag: fromTag,
		LocalURI: d.LocalURI, RemoteURI: "<" + target.String() + ">", RemoteTarget: target.String(),
		LocalCSeq: 1, InviteCSeq: 1, Local: d.Local, Transport: "udp", Edge: d.Edge,
		SDPSession: sessionID(fromTag), SDPVersion: 1, State: store.DialogConfirmed, Created: u.now(),
	}
	if tp, ok := target.UriParams.Get("transport"); ok && tp != "" {
		out.Transport = strings.ToLower(tp)
	}
	offer, err := u.caps.Offer(mediaHost(d), out.SDPSession, out.SDPVersion)
	if err != nil {
		u.log.Error("transfer offer", "error", err)
	}
	out.LocalSDP = string(offer)
	reported := map[int]bool{}
	final := "SIP/2.0 503 Service Unavailable"
	invite, err := u.request(out, sip.INVITE, 1, "application/sdp", offer, extra...)
	var res uac.Response
	if err == nil {
		res, err = u.send.Invite(ctx, invite, uac.Via{}, u.ackFor(out, 1), func(p uac.Response) {
			if p.StatusCode > 100 && !reported[p.StatusCode] {
				reported[p.StatusCode] = true
				notes <- note{frag: "SIP/2.0 " + strconv.Itoa(p.StatusCode) + " " + p.Reason}
			}
		})
	}
	if err != nil {
		u.log.Info("transfer call failed", "target", target.String(), "error", err)
	} else {
		final = "SIP/2.0 " + strconv.Itoa(res.StatusCode) + " " + res.Reason
		if res.IsSuccess() {
			u.transferAnswered(ctx, out, res.Response)
		}
	}
	notes <- note{frag: final, final: true}
}

// transferAnswered keeps the transfer call as a dialog once its 2xx is ACKed,
// so the target's BYE (or a refresh) is served like any other.
func (u *UAS) transferAnswered(ctx context.Context, out *store.Dialog, res *sip.Response) {
	out.RemoteTag = tagOf(res.To())
	if c := res.Contact(); c != nil {
		out.RemoteTarget = c.Address.String()
	}
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- { // a UAC's route set is the reverse (RFC 3261 §12.1.2)
		out.RouteSet = append(out.RouteSet, rr[i].Value())
	}
	out.RemoteSDP = string(res.Body())
	u.keepAlive(out)
	if err := u.dialogs.Create(ctx, out); err != nil {
		u.log.Warn("transfer dialog not stored", "call_id", out.CallID, "error", err)
		return
	}
	u.announce(dialogEvent(wire.EventCallStarted, out))
}

// notifyRefer sends the referrer a NOTIFY with frag as message/sipfrag (RFC
// 3515 §2.4.5); final ends the subscription.
func (u *UAS) notifyRefer(ctx context.Context, id, eventID, frag string, final bool) {
	state := "active;expires=" + referNotifyExpires
	if final {
		state = "terminated;reason=noresource"
	}
	d, err := u.nextCSeq(ctx, id)
	if err != nil {
		u.log.Info("referring dialog gone; NOTIFY not sent", "dialog", id, "error", err)
		return
	}
	body := []byte(frag + "\r\n")
	msg, err := u.request(d, sip.NOTIFY, d.LocalCSeq, "message/sipfrag;version=2.0", body,
		sip.NewHeader("Event", "refer;id="+eventID), sip.NewHeader("Subscription-State", state))
	var res uac.Response
	if err == nil {
		res, err = u.send.Do(ctx, msg, viaFor(d), nil)
	}
	switch {
	case err != nil:
		u.log.Info("NOTIFY not delivered", "call_id", d.CallID, "error", err)
	case res.StatusCode >= 300:
		u.log.Info("NOTIFY refused", "call_id", d.CallID, "code", res.StatusCode)
	}
	ev := dialogEvent(wire.EventReferNotify, d)
	ev.ContentType, ev.Body = "message/sipfrag", frag
	u.announce(ev)
}
