package uas

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// Dialogs (RFC 3261 §12) as the uas keeps them, and the requests it sends
// inside them through the edge's send path.

// sendTimeout bounds a request the uas sends: a transaction's Timer B/F, and
// an INVITE's ringing.
const sendTimeout = 3*time.Minute + 45*time.Second

// newDialog is the UAS side of the dialog an INVITE creates (RFC 3261 §12.1.1).
func (u *UAS) newDialog(r *sipbus.Request, localTag string) *store.Dialog {
	now := u.now()
	d := &store.Dialog{
		ID: store.DialogID(r.CallID().Value(), localTag), CallID: r.CallID().Value(),
		LocalTag: localTag, RemoteTag: tagOf(r.From()),
		LocalURI: nameAddr(r.To()), RemoteURI: nameAddr(r.From()),
		RemoteCSeq: r.CSeq().SeqNo, InviteCSeq: r.CSeq().SeqNo,
		Edge: r.Edge, Transport: r.Transport, Flow: r.Flow, Local: contactHostPort(r),
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

// contactHostPort is the address this UAS puts in Contact and SDP: the edge's
// own, or where the request was sent when the edge listens on every interface.
func contactHostPort(r *sipbus.Request) string {
	host, port, err := net.SplitHostPort(r.Local)
	if err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return r.Local
		}
	}
	h := r.Recipient.Host
	if p := r.Recipient.Port; p != 0 {
		return net.JoinHostPort(h, strconv.Itoa(p))
	}
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	return h
}

// contact is this UAS's Contact for dialog d.
func contact(d *store.Dialog) sip.Header {
	uri := "sip:siphon@" + d.Local
	if d.Transport != "" && d.Transport != "udp" {
		uri += ";transport=" + d.Transport
	}
	return sip.NewHeader("Contact", "<"+uri+">")
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

// request builds a request inside d (RFC 3261 §12.2.1.1) with the next local
// CSeq, which the caller stores. The edge adds its Via.
func (u *UAS) request(d *store.Dialog, method string, cseq uint32, body []byte, hdrs ...string) []byte {
	var b strings.Builder
	b.WriteString(method + " " + d.RemoteTarget + " SIP/2.0\r\n")
	for _, r := range d.RouteSet {
		b.WriteString("Route: " + r + "\r\n")
	}
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: " + d.LocalURI + ";tag=" + d.LocalTag + "\r\n")
	b.WriteString("To: " + d.RemoteURI)
	if d.RemoteTag != "" { // an initial INVITE (a transfer call) has none yet
		b.WriteString(";tag=" + d.RemoteTag)
	}
	b.WriteString("\r\n")
	b.WriteString("Call-ID: " + d.CallID + "\r\n")
	b.WriteString("CSeq: " + strconv.FormatUint(uint64(cseq), 10) + " " + method + "\r\n")
	b.WriteString("Contact: " + contact(d).Value() + "\r\n")
	b.WriteString("User-Agent: " + u.userAgent + "\r\n")
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return []byte(b.String())
}

// sendSubject and header say which edge sends for d: the one owning its
// connection, or any edge for UDP.
func sendVia(d *store.Dialog) (string, nats.Header) {
	if d.Flow != "" {
		return wire.EdgeSend(d.Edge), nats.Header{wire.HdrFlow: {d.Flow}}
	}
	return wire.EdgeSendAny, nats.Header{}
}

// send runs a request through the edge and returns its final response; each
// provisional one goes to onProvisional when given.
func (u *UAS) send(ctx context.Context, subject string, hdr nats.Header, msg []byte, onProvisional func(*sip.Response)) (*sip.Response, error) {
	st, err := u.streamer.Open(subject, hdr, msg)
	if err != nil {
		return nil, fmt.Errorf("uas: send: %w", err)
	}
	defer st.Close()
	for {
		m, err := st.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("uas: send: %w", err)
		}
		if bus.IsNoResponders(m) {
			return nil, errors.New("uas: send: no edge is running")
		}
		if e := m.Header.Get(micro.ErrorHeader); e != "" {
			return nil, fmt.Errorf("uas: send: edge refused: %s", e)
		}
		parsed, err := sip.ParseMessage(m.Data)
		if err != nil {
			return nil, fmt.Errorf("uas: send: unparseable response: %w", err)
		}
		res, ok := parsed.(*sip.Response)
		if !ok {
			return nil, errors.New("uas: send: edge replied with a request")
		}
		if res.StatusCode >= 200 {
			return res, nil
		}
		if onProvisional != nil {
			onProvisional(res)
		}
	}
}

// sendStateless hands the edge an ACK, which gets no response.
func (u *UAS) sendStateless(subject string, hdr nats.Header, msg []byte) error {
	m, err := u.nc.RequestMsg(&nats.Msg{Subject: subject, Header: hdr, Data: msg}, storeTimeout)
	if err != nil {
		return fmt.Errorf("uas: send ACK: %w", err)
	}
	if e := m.Header.Get(micro.ErrorHeader); e != "" {
		return fmt.Errorf("uas: send ACK: edge refused: %s", e)
	}
	return nil
}

// hangUp ends d from this side: BYE through the edge, then the dialog is gone.
func (u *UAS) hangUp(ctx context.Context, d *store.Dialog, reason string) {
	next, err := u.nextCSeq(ctx, d.ID)
	if err == nil {
		d = next
	}
	subject, hdr := sendVia(d)
	res, err := u.send(ctx, subject, hdr, u.request(d, "BYE", d.LocalCSeq, nil, "Reason: SIP;cause=200;text=\""+reason+"\""), nil)
	if err != nil {
		u.log.Info("BYE not answered", "call_id", d.CallID, "error", err)
	} else if res.StatusCode >= 300 {
		u.log.Info("BYE refused", "call_id", d.CallID, "code", res.StatusCode)
	}
	_, _ = u.dialogs.Delete(ctx, d.ID)
}
