package uas

import (
	"errors"

	"github.com/pion/sdp/v3"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// errNoAnswerOwed: an ACK carried SDP though no offer of this side was open.
var errNoAnswerOwed = errors.New("no offer awaits an answer")

// ack takes the ACK of a 2xx. The dialog was confirmed when the 2xx went, so
// only an ACK with a body matters: the answer to a late offer (RFC 3264 §4).
// ACKs get no response.
func (u *UAS) ack(r *sipbus.Request) {
	body := r.Body()
	id, ok := inDialogID(r)
	if len(body) == 0 || !ok {
		return
	}
	var parsed sdp.SessionDescription
	if err := parsed.Unmarshal(body); err != nil {
		u.log.Info("ACK carried an unparseable answer", "call_id", r.CallID().Value(), "error", err)
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error {
		if !d.OfferPending {
			return errNoAnswerOwed
		}
		d.RemoteSDP, d.OfferPending = string(body), false
		return nil
	})
	if err != nil {
		u.log.Info("ACK answer not taken", "call_id", r.CallID().Value(), "error", err)
		return
	}
	ev := dialogEvent(wire.EventCallAnswered, d)
	ev.ContentType, ev.Body = "application/sdp", string(body)
	u.announce(ev)
}
