package uas

import (
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// bye ends the dialog it names: 200 once it is gone from the store, 481 when
// there is none (RFC 3261 §15.1.2). Any replica serves it.
func (u *UAS) bye(r *sipbus.Request) {
	id, ok := u.dialogOf(r)
	if !ok {
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := u.dialogs.Delete(ctx, id)
	if err != nil {
		u.answerInDialog(r, err)
		return
	}
	u.reply(r, 200, "OK", "")
	u.announce(dialogEvent(wire.EventCallEnded, d))
}
