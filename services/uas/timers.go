package uas

import (
	"context"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/store"
)

// What the uas does unprompted: every replica sweeps the store for due dialogs
// (the store hands each to one replica) and refreshes, ends or forgets them.

func (u *UAS) sweep() {
	defer u.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
			ctx, cancel := u.ctx()
			due, err := u.dialogs.Due(ctx, u.now(), 200)
			cancel()
			if err != nil {
				u.log.Warn("dialog sweep failed", "error", err)
			}
			for _, d := range due {
				go u.act(d)
			}
		}
	}
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
		u.announce(dialogEvent(EventSessionExpired, d))
	default:
		u.forget(ctx, d, "no request for "+u.cfg.DialogExpiry.String())
	}
}

// forget drops d without a word to the peer: it has not been heard from.
func (u *UAS) forget(ctx context.Context, d *store.Dialog, why string) {
	if _, err := u.dialogs.Delete(ctx, d.ID); err != nil {
		return
	}
	ev := dialogEvent(EventDialogExpired, d)
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
	var body []byte
	hdrs := []string{
		"Session-Expires: " + strconv.Itoa(d.SessionExpires) + ";refresher=uas",
		"Supported: timer",
	}
	method := "UPDATE"
	if !d.PeerUpdate {
		method = "INVITE"
		if d.LocalSDP != "" {
			body = []byte(d.LocalSDP)
			hdrs = append(hdrs, "Content-Type: application/sdp")
		}
	}
	subject, hdr := sendVia(d)
	res, err := u.send(ctx, subject, hdr, u.request(d, method, d.LocalCSeq, body, hdrs...), nil)
	if err != nil || !res.IsSuccess() {
		code := 0
		if res != nil {
			code = res.StatusCode
		}
		u.log.Info("session refresh failed; ending the session", "call_id", d.CallID, "code", code, "error", err)
		u.hangUp(ctx, d, "session refresh failed")
		u.announce(dialogEvent(EventSessionExpired, d))
		return
	}
	if method == "INVITE" {
		u.ackRefresh(d, res)
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
		u.announce(dialogEvent(EventSessionRefreshed, d))
	}
}

// ackRefresh ACKs the 2xx of a refreshing re-INVITE.
func (u *UAS) ackRefresh(d *store.Dialog, res *sip.Response) {
	target := *d
	if c := res.Contact(); c != nil {
		target.RemoteTarget = c.Address.String()
	}
	subject, hdr := sendVia(d)
	if err := u.sendStateless(subject, hdr, u.request(&target, "ACK", d.LocalCSeq, nil)); err != nil {
		u.log.Info("refresh ACK failed", "call_id", d.CallID, "error", err)
	}
}

func leadingToken(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == ';' || v[i] == ' ' {
			return v[:i]
		}
	}
	return v
}
