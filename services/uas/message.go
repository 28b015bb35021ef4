package uas

import (
	"github.com/siphon-lab/siphon/pkg/sipbus"
)

// message takes a MESSAGE (RFC 3428), outside a dialog or inside one, and
// publishes it as message.received.
func (u *UAS) message(r *sipbus.Request) {
	ev := Event{Event: EventMessage, CallID: r.CallID().Value(), From: r.From().Value(), To: r.To().Value()}
	if id, inDialog := inDialogID(r); inDialog {
		ctx, cancel := u.ctx()
		defer cancel()
		d, err := u.record(ctx, r, id)
		if err != nil {
			u.answerInDialog(r, err)
			return
		}
		ev = dialogEvent(EventMessage, d)
	}
	u.reply(r, 200, "OK", "")
	ev.ContentType, ev.Body = header(r.Request, "Content-Type", "c"), string(r.Body())
	u.announce(ev)
}
