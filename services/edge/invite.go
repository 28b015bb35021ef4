package edge

import (
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// What the edge does for INVITE beyond relaying: it tells the role replica that
// holds an INVITE when the caller cancels it, and it retransmits a 2xx over UDP
// until the ACK comes (RFC 6026 moved that out of the transaction; the edge keeps
// it because it owns the socket, and so the 2xx survives the replica that sent it).

// inviteRelay is the INVITE-only part of one relay.
type inviteRelay struct {
	cancelled chan *sip.Request // the CANCEL sipgo answered (200, then 487)
	replica   string            // the role replica that answered so far
	cancel    *sip.Request      // set once cancelled, until a replica is known
}

// watchCancel hears when sipgo cancels tx. sipgo answers the CANCEL 200 and the
// INVITE 487 itself; the role must still hear of it, to stop ringing.
func watchCancel(tx sip.ServerTransaction) *inviteRelay {
	inv := &inviteRelay{cancelled: make(chan *sip.Request, 1)}
	srv, ok := tx.(*sip.ServerTx)
	if !ok {
		return inv
	}
	notify := func(r *sip.Request) {
		select {
		case inv.cancelled <- r:
		default:
		}
	}
	if !srv.OnCancel(notify) && srv.Err() == sip.ErrTransactionCanceled {
		// Cancelled before the callback was in place: sipgo has answered it, but
		// the CANCEL itself is gone; the role is told with a CANCEL built from the INVITE.
		notify(cancelFor(srv.Origin()))
	}
	return inv
}

// cancelFor builds the CANCEL RFC 3261 §9.1 would send for invite.
func cancelFor(invite *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, invite.Recipient)
	for _, name := range []string{"Via", "From", "To", "Call-ID", "Max-Forwards"} {
		if h := invite.GetHeader(name); h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	c.AppendHeader(&sip.CSeqHeader{SeqNo: invite.CSeq().SeqNo, MethodName: sip.CANCEL})
	c.SetTransport(invite.Transport())
	c.SetSource(invite.Source())
	return c
}

// forwardCancel passes cancel to the replica of role that holds its INVITE.
func (e *Edge) forwardCancel(role, replica string, cancel *sip.Request) {
	err := e.nc.PublishMsg(&nats.Msg{
		Subject: wire.Replica(role, replica), Header: e.busHeader(cancel), Data: []byte(cancel.String()),
	})
	if err != nil {
		e.log.Warn("forward CANCEL failed", "role", role, "replica", replica, "error", err)
	}
}

// ackWaiters are the 2xx responses the edge retransmits, by Call-ID and CSeq.
type ackWaiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func ackKey(callID string, cseq uint32) string {
	return callID + " " + strconv.FormatUint(uint64(cseq), 10)
}

// acked stops the retransmission the ACK ack answers, if any.
func (a *ackWaiters) acked(ack *sip.Request) {
	callID, cseq := ack.CallID(), ack.CSeq()
	if callID == nil || cseq == nil {
		return
	}
	k := ackKey(callID.Value(), cseq.SeqNo)
	a.mu.Lock()
	c, ok := a.m[k]
	delete(a.m, k)
	a.mu.Unlock()
	if ok {
		close(c)
	}
}

// acceptedInvite sees a 2xx to an INVITE through, then ends its transaction.
// sipgo would keep it in Accepted for Timer L (64·T1) to absorb retransmitted
// INVITEs; once the ACK is here (UDP) or at once (a stream, where the UAC never
// retransmits), none can come, and 32 s of transactions at thousands of calls per
// second is most of the edge's heap.
func (e *Edge) acceptedInvite(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	if req.Transport() == "UDP" && !e.retransmit2xx(req, tx, res) {
		return
	}
	tx.Terminate()
}

// retransmit2xx resends res on tx over UDP at T1, 2·T1, … capped at T2, until
// the ACK for it comes or 64·T1 has passed (RFC 3261 §13.3.1.4). It reports
// whether the ACK came.
func (e *Edge) retransmit2xx(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) bool {
	k := ackKey(req.CallID().Value(), req.CSeq().SeqNo)
	ack := make(chan struct{})
	e.acks.mu.Lock()
	e.acks.m[k] = ack
	e.acks.mu.Unlock()
	defer func() {
		e.acks.mu.Lock()
		if e.acks.m[k] == ack {
			delete(e.acks.m, k)
		}
		e.acks.mu.Unlock()
	}()
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	interval := sip.T1
	next := time.NewTimer(interval)
	defer next.Stop()
	for {
		select {
		case <-ack:
			return true
		case <-giveUp.C:
			e.log.Info("no ACK for a 2xx", "call_id", req.CallID().Value())
			return false
		case <-tx.Done():
			return false
		case <-next.C:
			if err := tx.Respond(res); err != nil {
				return false
			}
			interval = min(2*interval, sip.T2)
			next.Reset(interval)
		}
	}
}
