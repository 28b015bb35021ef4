package uas

import (
	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// fromReplicaSubject takes what is addressed to this replica alone: a CANCEL
// the edge passes on for an INVITE ringing here (matched by the INVITE's
// transaction key, Siphon-Tx), or a PRACK another replica answered for one
// (matched by its dialog).
func (u *UAS) fromReplicaSubject(m *nats.Msg) {
	if bus.AnswerProbe(m) {
		return // the edge checking this replica still holds its ringing INVITEs
	}
	msg, err := sip.ParseMessage(m.Data)
	if err != nil {
		u.log.Warn("unparseable message on the replica subject", "error", err)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.CallID() == nil {
		return
	}
	switch req.Method {
	case sip.CANCEL:
		if v, ok := u.ringing.Load(m.Header.Get(wire.HdrTx)); ok {
			// A call already answered ignores it: the 2xx that crossed the
			// CANCEL reaches the caller, who ACKs and ends it with BYE.
			v.(*call).cancel()
		}
	case sip.PRACK:
		id := store.DialogID(req.CallID().Value(), tagOf(req.To()))
		if v, ok := u.pracks.Load(id); ok {
			if rseq, _, _, ok := parseRAck(header(req, "RAck", "")); ok {
				select {
				case v.(*call).pracked <- rseq:
				default:
				}
			}
		}
	}
}
