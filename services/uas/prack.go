package uas

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// errNoSuchProvisional: a PRACK whose RAck matches no unacknowledged reliable
// provisional response (RFC 3262 §3: 481).
var errNoSuchProvisional = errors.New("RAck matches no unacknowledged reliable provisional response")

// prack acknowledges a reliable provisional response (RFC 3262 §3): RAck must
// name its RSeq, the INVITE's CSeq and INVITE. Whichever replica takes it
// stores it and tells the replica holding the INVITE, which stops
// retransmitting and goes on to answer.
func (u *UAS) prack(r *sipbus.Request) {
	id, ok := u.dialogOf(r)
	if !ok {
		return
	}
	rseq, cseq, method, ok := parseRAck(header(r.Request, "RAck", ""))
	if !ok {
		u.reply(r, 400, "Bad Request", "PRACK without a valid RAck (response-num CSeq-num method)")
		return
	}
	ctx, cancel := u.ctx()
	defer cancel()
	d, err := store.Retry(ctx, u.dialogs, id, func(d *store.Dialog) error {
		if d.RSeq == 0 || rseq != d.RSeq || rseq <= d.RSeqAcked || cseq != d.InviteCSeq || method != "INVITE" {
			return errNoSuchProvisional
		}
		if err := u.takeRequest(d, r); err != nil {
			return err
		}
		d.RSeqAcked = rseq
		return u.negotiate(d, r, true)
	})
	switch {
	case errors.Is(err, errNoSuchProvisional):
		u.reply(r, 481, "Call/Transaction Does Not Exist", err.Error())
		return
	case err != nil:
		u.refuseChange(r, err)
		return
	}
	var body []byte
	if len(r.Body()) > 0 && d.LocalSDP != "" {
		body = []byte(d.LocalSDP)
	}
	u.respond(r, u.dialogResponse(r, d, 200, "OK", body))
	if d.Replica != "" && u.publish != nil {
		err := u.publish(&nats.Msg{Subject: wire.Replica(wire.RoleUAS, d.Replica), Data: []byte(r.String())})
		if err != nil {
			u.log.Warn("PRACK not passed to the replica holding the INVITE", "replica", d.Replica, "error", err)
		}
	}
}

// parseRAck reads "response-num CSeq-num Method" (RFC 3262 §7.2).
func parseRAck(v string) (rseq, cseq uint32, method string, ok bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return 0, 0, "", false
	}
	a, err1 := strconv.ParseUint(f[0], 10, 32)
	b, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return uint32(a), uint32(b), strings.ToUpper(f[2]), true
}
