package uas

import (
	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"
)

// fromReplicaSubject takes what is addressed to this replica alone: a CANCEL
// the edge passes on for an INVITE ringing here, or a PRACK another replica
// answered for one.
func (u *UAS) fromReplicaSubject(m *nats.Msg) {
	msg, err := sip.ParseMessage(m.Data)
	if err != nil {
		u.log.Warn("unparseable message on the replica subject", "error", err)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.CallID() == nil {
		return
	}
	v, ok := u.ringing.Load(ringKey(req.CallID().Value(), tagOf(req.From())))
	if !ok {
		return // answered long ago, or never here
	}
	c := v.(*call)
	switch req.Method {
	case sip.CANCEL:
		if c.cancel() {
			// The 200 crossed the CANCEL: the edge sent the caller 487, so the
			// call it thinks is up is not.
			go u.cancelled(c.id)
		}
	case sip.PRACK:
		if rseq, _, _, ok := parseRAck(header(req, "RAck", "")); ok {
			select {
			case c.pracked <- rseq:
			default:
			}
		}
	}
}
