package uas

import (
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// info takes an INFO inside a dialog (RFC 6086) and publishes what it carried
// as info.received, so a test sees the DTMF or whatever arrived. RFC 6086
// legacy INFO without Info-Package is accepted too, as phones send it.
func (u *UAS) info(r *sipbus.Request) {
	id, ok := u.dialogOf(r)
	if !ok {
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := u.record(ctx, r, id)
	if err != nil {
		u.answerInDialog(r, err)
		return
	}
	u.reply(r, 200, "OK", "")
	ev := dialogEvent(wire.EventInfoReceived, d)
	ev.ContentType, ev.Body = header(r.Request, "Content-Type", "c"), string(r.Body())
	ev.InfoPackage = header(r.Request, "Info-Package", "")
	u.announce(ev)
}
