package uas

import (
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// update changes the session inside an early or confirmed dialog without
// touching its state (RFC 3311): an offer is answered like a re-INVITE's, and
// it refreshes the session timer (RFC 4028).
func (u *UAS) update(r *sipbus.Request) {
	id, ok := u.dialogOf(r)
	if !ok {
		return
	}
	if u.refuseExtensions(r) {
		return
	}
	st, ok := u.negotiateTimer(r)
	if !ok {
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error {
		if err := u.takeRequest(d, r); err != nil {
			return err
		}
		if len(r.Body()) > 0 && d.OfferPending {
			return errOfferPending
		}
		if err := u.negotiate(d, r, true); err != nil {
			return err
		}
		if c := r.Contact(); c != nil {
			d.RemoteTarget = c.Address.String()
		}
		if d.State == store.DialogConfirmed {
			u.applyTimer(d, st)
		}
		return nil
	})
	if err != nil {
		u.refuseChange(r, err)
		return
	}
	var body []byte
	if len(r.Body()) > 0 && d.LocalSDP != "" {
		body = []byte(d.LocalSDP)
	}
	res := u.dialogResponse(r, d, 200, "OK", body)
	if d.State == store.DialogConfirmed {
		for _, h := range timerHeaders(st) {
			res.AppendHeader(h)
		}
	}
	u.respond(r, res)
	if st.interval != 0 && d.State == store.DialogConfirmed {
		u.announce(dialogEvent(wire.EventSessionRefreshed, d))
	}
}
