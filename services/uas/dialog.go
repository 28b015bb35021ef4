package uas

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
)

// Dialogs (RFC 3261 §12) as the uas keeps them, and the requests it sends
// inside them through the edge's send path.

// sendTimeout bounds a request the uas sends: a transaction's Timer B/F, and
// an INVITE's ringing (the edge's Timer C ends it before).
const sendTimeout = 3*time.Minute + 45*time.Second

// newDialog is the UAS side of the dialog an INVITE creates (RFC 3261 §12.1.1).
func (u *UAS) newDialog(r *sipbus.Request, localTag string) *store.Dialog {
	now := u.now()
	d := &store.Dialog{
		ID: store.DialogID(r.CallID().Value(), localTag), CallID: r.CallID().Value(),
		LocalTag: localTag, RemoteTag: tagOf(r.From()),
		LocalURI: nameAddr(r.To()), RemoteURI: nameAddr(r.From()),
		RemoteCSeq: r.CSeq().SeqNo, InviteCSeq: r.CSeq().SeqNo,
		Edge: r.Edge, Transport: r.Transport, Flow: r.Flow, Local: r.Reachable(),
		SDPSession: sessionID(localTag), SDPVersion: 1,
		Created: now,
	}
	if c := r.Contact(); c != nil {
		d.RemoteTarget = c.Address.String()
	}
	d.PeerUpdate = has(r.Request, "Allow", "update")
	for _, h := range r.GetHeaders("Record-Route") {
		d.RouteSet = append(d.RouteSet, h.Value())
	}
	u.keepAlive(d)
	return d
}

// keepAlive moves d's expiry on: a request arrived in it. A dialog with a
// session timer lives by the timer instead (sessionDue).
func (u *UAS) keepAlive(d *store.Dialog) {
	if d.SessionExpires > 0 {
		return
	}
	d.Due = u.now().Add(u.cfg.DialogExpiry)
	d.Expires = d.Due.Add(time.Minute) // the sweep still finds it to announce
}

func tagOf(h interface{ Value() string }) string {
	switch v := h.(type) {
	case *sip.FromHeader:
		if v != nil {
			t, _ := v.Params.Get("tag")
			return t
		}
	case *sip.ToHeader:
		if v != nil {
			t, _ := v.Params.Get("tag")
			return t
		}
	}
	return ""
}

// nameAddr is a From/To header's address without its tag, as a name-addr.
func nameAddr(h interface{ Value() string }) string {
	var addr sip.Uri
	var name string
	switch v := h.(type) {
	case *sip.FromHeader:
		addr, name = v.Address, v.DisplayName
	case *sip.ToHeader:
		addr, name = v.Address, v.DisplayName
	}
	if name != "" {
		return strconv.Quote(name) + " <" + addr.String() + ">"
	}
	return "<" + addr.String() + ">"
}

// contactURI is this UAS's Contact URI for dialog d.
func contactURI(d *store.Dialog) string {
	uri := "sip:siphon@" + d.Local
	if d.Transport != "" && d.Transport != "udp" {
		uri += ";transport=" + d.Transport
	}
	return uri
}

// contact is this UAS's Contact header for dialog d.
func contact(d *store.Dialog) sip.Header {
	return sip.NewHeader("Contact", "<"+contactURI(d)+">")
}

// mediaHost is the address the SDP announces.
func mediaHost(d *store.Dialog) string {
	host, _, err := net.SplitHostPort(d.Local)
	if err != nil {
		return d.Local
	}
	return host
}

// sessionID is the o= session id, stable for a dialog and drawn from its tag so
// SIPHON_ID_SEED reproduces it.
func sessionID(tag string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(tag))
	return h.Sum64() >> 1
}

// firstRSeq is a reliable provisional's first RSeq: in 1..2^31-1 (RFC 3262 §3).
func firstRSeq(tag string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(tag))
	return h.Sum32()&0x3fffffff + 1
}

// inDialogID is the dialog an in-dialog request names with its To tag.
func inDialogID(r *sipbus.Request) (string, bool) {
	tag := tagOf(r.To())
	if tag == "" {
		return "", false
	}
	return store.DialogID(r.CallID().Value(), tag), true
}

// dialogOf is the dialog an in-dialog request names; a request without a To
// tag names none, gets 481, and dialogOf reports false.
func (u *UAS) dialogOf(r *sipbus.Request) (string, bool) {
	id, ok := inDialogID(r)
	if !ok {
		u.answerInDialog(r, store.ErrDialogNotFound)
	}
	return id, ok
}

// errOutOfOrder: a request's CSeq is not above the last one (RFC 3261 §12.2.2).
var errOutOfOrder = errors.New("CSeq lower than the dialog's")

// takeRequest records an in-dialog request in d: its CSeq must rise.
func (u *UAS) takeRequest(d *store.Dialog, r *sipbus.Request) error {
	cseq := r.CSeq().SeqNo
	if cseq <= d.RemoteCSeq && r.Method != sip.ACK {
		return errOutOfOrder
	}
	d.RemoteCSeq = cseq
	u.keepAlive(d)
	return nil
}

// record stores that r arrived in dialog id (its CSeq, the dialog's expiry)
// and returns the dialog.
func (u *UAS) record(ctx context.Context, r *sipbus.Request, id string) (*store.Dialog, error) {
	return store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error { return u.takeRequest(d, r) })
}

// nextCSeq takes the next local CSeq of dialog id for a request this side sends.
func (u *UAS) nextCSeq(ctx context.Context, id string) (*store.Dialog, error) {
	return store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error { d.LocalCSeq++; return nil })
}

// answerInDialog gives the common answers to an in-dialog request whose dialog
// could not be taken: 481 when there is none, 500 when out of order.
func (u *UAS) answerInDialog(r *sipbus.Request, err error) {
	switch {
	case errors.Is(err, store.ErrDialogNotFound):
		u.reply(r, 481, "Call/Transaction Does Not Exist", "no dialog "+r.CallID().Value()+" with tag "+tagOf(r.To()))
	case errors.Is(err, errOutOfOrder):
		u.reply(r, 500, "Server Internal Error", "CSeq "+strconv.FormatUint(uint64(r.CSeq().SeqNo), 10)+" is out of order", sip.NewHeader("Retry-After", "1"))
	default:
		u.log.Error("dialog store failed", "method", r.Method, "error", err)
		u.reply(r, 500, "Server Internal Error", "dialog store unavailable", sip.NewHeader("Retry-After", "5"))
	}
}

// request builds a request of method inside d (RFC 3261 §12.2.1.1) with CSeq
// cseq, which the caller has taken. The edge adds its Via.
func (u *UAS) request(d *store.Dialog, method sip.RequestMethod, cseq uint32, contentType string, body []byte, hdrs ...sip.Header) (*sip.Request, error) {
	view := uac.Dialog{
		CallID: d.CallID, LocalURI: d.LocalURI, LocalTag: d.LocalTag,
		RemoteURI: d.RemoteURI, RemoteTag: d.RemoteTag, RemoteTarget: d.RemoteTarget,
		RouteSet: d.RouteSet, Contact: contactURI(d), UserAgent: u.userAgent,
	}
	req, err := view.Request(method, cseq, contentType, body)
	if err != nil {
		return nil, fmt.Errorf("uas: %s in %s: %w", method, d.ID, err)
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	return req, nil
}

// viaFor says which edge sends for d: the one owning its connection, or any
// edge for UDP.
func viaFor(d *store.Dialog) uac.Via {
	if d.Flow != "" {
		return uac.Via{Edge: d.Edge, Flow: d.Flow}
	}
	return uac.Via{}
}

// ackFor builds the ACK of a 2xx to an INVITE this side sent in d (RFC 3261
// §13.2.2.4): the 2xx's Contact is the remote target, the INVITE's CSeq number.
func (u *UAS) ackFor(d *store.Dialog, cseq uint32) func(*sip.Response) (*sip.Request, error) {
	return func(res *sip.Response) (*sip.Request, error) {
		target := *d
		if c := res.Contact(); c != nil {
			target.RemoteTarget = c.Address.String()
		}
		if target.RemoteTag == "" {
			target.RemoteTag = tagOf(res.To())
		}
		return u.request(&target, sip.ACK, cseq, "", nil)
	}
}

// hangUp ends d from this side: BYE through the edge, then the dialog is gone.
func (u *UAS) hangUp(ctx context.Context, d *store.Dialog, reason string) {
	next, err := u.nextCSeq(ctx, d.ID)
	if err == nil {
		d = next
	}
	bye, err := u.request(d, sip.BYE, d.LocalCSeq, "", nil, sip.NewHeader("Reason", `SIP;cause=200;text="`+reason+`"`))
	if err == nil {
		var res uac.Response
		res, err = u.send.Do(ctx, bye, viaFor(d), nil)
		if err == nil && res.StatusCode >= 300 {
			u.log.Info("BYE refused", "call_id", d.CallID, "code", res.StatusCode)
		}
	}
	if err != nil {
		u.log.Info("BYE not answered", "call_id", d.CallID, "error", err)
	}
	_, _ = u.dialogs.Delete(ctx, d.ID)
}
