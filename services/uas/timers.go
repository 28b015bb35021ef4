package uas

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// What the uas does unprompted: every replica sweeps the store for due dialogs
// (the store hands each to one replica) and refreshes, ends or forgets them.

func (u *UAS) sweep() {
	defer u.wg.Done()
	t := u.clock.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.Chan():
			for _, d := range u.due() {
				go u.act(d)
			}
		}
	}
}

// due takes the dialogs due now; the store hands each to one replica.
func (u *UAS) due() []*store.Dialog {
	ctx, cancel := u.ctx()
	defer cancel()
	due, err := u.dialogs.Due(ctx, u.now(), 200)
	if err != nil {
		u.log.Warn("dialog sweep failed", "error", err)
	}
	return due
}

// act does what d is due for.
func (u *UAS) act(d *store.Dialog) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	now := u.now()
	switch {
	case d.State == store.DialogEarly:
		// The replica that held the INVITE is gone, or it rang out.
		u.forget(ctx, d, "unanswered early dialog")
	case d.SessionExpires > 0 && d.Refresher == "uas" &&
		now.Before(d.Refreshed.Add(time.Duration(d.SessionExpires)*time.Second)):
		u.refresh(ctx, d)
	case d.SessionExpires > 0:
		u.hangUp(ctx, d, "session expired")
		u.announce(dialogEvent(wire.EventSessionExpired, d))
	default:
		u.forget(ctx, d, "no request for "+u.cfg.DialogExpiry.String())
	}
}

// forget drops d without a word to the peer: it has not been heard from.
func (u *UAS) forget(ctx context.Context, d *store.Dialog, why string) {
	if _, err := u.dialogs.Delete(ctx, d.ID); err != nil {
		return
	}
	ev := dialogEvent(wire.EventDialogExpired, d)
	ev.Reason = why
	u.announce(ev)
}

// refresh refreshes d's session as its refresher (RFC 4028 §10): an UPDATE
// without a body when the peer allows UPDATE, else a re-INVITE offering the
// unchanged session description. A refresh that fails ends the session with BYE.
func (u *UAS) refresh(ctx context.Context, d *store.Dialog) {
	d, err := store.Retry(ctx, u.dialogs, d.ID, func(d *store.Dialog) error {
		d.LocalCSeq++
		d.Due = time.Time{} // until the refresh settles; the sweep leaves it alone
		return nil
	})
	if err != nil {
		return
	}
	hdrs := []sip.Header{
		sip.NewHeader("Session-Expires", strconv.Itoa(d.SessionExpires)+";refresher=uas"),
		sip.NewHeader("Supported", "timer"),
	}
	var res uac.Response
	req, err := u.refreshRequest(d, hdrs)
	if err == nil {
		if req.IsInvite() {
			res, err = u.send.Invite(ctx, req, viaFor(d), u.ackFor(d, d.LocalCSeq), nil)
		} else {
			res, err = u.send.Do(ctx, req, viaFor(d), nil)
		}
	}
	if err != nil || !res.IsSuccess() {
		code := 0
		if res.Response != nil {
			code = res.StatusCode
		}
		u.log.Info("session refresh failed; ending the session", "call_id", d.CallID, "code", code, "error", err)
		u.hangUp(ctx, d, "session refresh failed")
		u.announce(dialogEvent(wire.EventSessionExpired, d))
		return
	}
	d, err = store.Retry(ctx, u.dialogs, d.ID, func(d *store.Dialog) error {
		d.Refreshed = u.now()
		if se := res.GetHeader("Session-Expires"); se != nil {
			if n, err := strconv.Atoi(leadingToken(se.Value())); err == nil && n > 0 {
				d.SessionExpires = n
			}
		}
		d.Due = sessionDue(d)
		d.Expires = d.Refreshed.Add(time.Duration(d.SessionExpires)*time.Second + time.Minute)
		if len(res.Body()) > 0 {
			d.RemoteSDP = string(res.Body())
		}
		return nil
	})
	if err == nil {
		u.announce(dialogEvent(wire.EventSessionRefreshed, d))
	}
}

// refreshRequest is the refresh of RFC 4028 §10: an UPDATE without a body when
// the peer allows UPDATE, else a re-INVITE offering the unchanged description.
func (u *UAS) refreshRequest(d *store.Dialog, hdrs []sip.Header) (*sip.Request, error) {
	if d.PeerUpdate {
		return u.request(d, sip.UPDATE, d.LocalCSeq, "", nil, hdrs...)
	}
	var body []byte
	if d.LocalSDP != "" {
		body = []byte(d.LocalSDP)
	}
	return u.request(d, sip.INVITE, d.LocalCSeq, "application/sdp", body, hdrs...)
}

func leadingToken(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == ';' || v[i] == ' ' {
			return v[:i]
		}
	}
	return v
}
