package uas

import (
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// message takes a MESSAGE (RFC 3428), outside a dialog or inside one, and
// publishes it as message.received.
func (u *UAS) message(r *sipbus.Request) {
	ev := wire.CallEvent{Event: wire.EventMessageReceived, CallID: r.CallID().Value(), From: r.From().Value(), To: r.To().Value()}
	if id, inDialog := inDialogID(r); inDialog {
		ctx, cancel := u.ctx()
		defer cancel()
		d, err := u.record(ctx, r, id)
		if err != nil {
			u.answerInDialog(r, err)
			return
		}
		ev = dialogEvent(wire.EventMessageReceived, d)
	}
	u.reply(r, 200, "OK", "")
	ev.ContentType, ev.Body = header(r.Request, "Content-Type", "c"), string(r.Body())
	u.announce(ev)
}
