package edge

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// What the edge does for an INVITE it relays to a role, beyond relaying:
//   - CANCEL (RFC 3261 §9.2). The edge takes a CANCEL before sipgo sees it (the
//     UDP read filter, the stream framing of stream.go), answers it 200 itself
//     (with the To tag of the role's provisional responses, §9.2), and passes it
//     to the role replica holding the INVITE, named by the Siphon-Replica of its
//     responses, with the INVITE's transaction key as Siphon-Tx. The role sends
//     the 487 with its own tag; a 2xx that crossed the CANCEL still goes to the
//     caller. A role that sends no final response within --role-timeout of the
//     CANCEL gets the 487 sent for it. A CANCEL the edge could not take first
//     (one on a connection the edge dialed) is answered by sipgo (200, then its
//     own 487) and still passed on.
//   - The 2xx over UDP is retransmitted by the edge until the ACK (RFC 6026
//     moved that out of the transaction; the edge owns the socket, so the 2xx
//     survives the replica that sent it).

// inviteRelay is the INVITE-only part of one relay.
type inviteRelay struct {
	key       string            // Siphon-Tx
	cancelled chan *sip.Request // the CANCEL, once
	once      sync.Once

	mu         sync.Mutex
	replica    string // the role replica that answered so far
	toTag      string // the tag of the role's provisional responses
	cancelSeen bool
}

func (inv *inviteRelay) take(c *sip.Request) {
	inv.once.Do(func() {
		inv.mu.Lock()
		inv.cancelSeen = true
		inv.mu.Unlock()
		inv.cancelled <- c
	})
}

func (inv *inviteRelay) heldBy(replica string) {
	inv.mu.Lock()
	inv.replica = replica
	inv.mu.Unlock()
}

func (inv *inviteRelay) holder() string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.replica
}

// wasCancelled reports whether the caller's CANCEL has come.
func (inv *inviteRelay) wasCancelled() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.cancelSeen
}

// provisionalTag keeps the To tag of a provisional response the role sent.
func (inv *inviteRelay) provisionalTag(res *sip.Response) {
	raw := res.GetHeader("To")
	if raw == nil {
		return
	}
	tag := toTag(raw.Value())
	inv.mu.Lock()
	if tag != "" {
		inv.toTag = tag
	}
	inv.mu.Unlock()
}

// toTag is the tag parameter of a To header value.
func toTag(v string) string {
	to := &sip.ToHeader{}
	var params sip.HeaderParams = sip.NewParams()
	if _, err := sip.ParseAddressValue(v, &to.Address, &params); err != nil {
		return ""
	}
	t, _ := params.Get("tag")
	return t
}

func (inv *inviteRelay) tag() string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.toTag
}

// inviteKey is the server transaction key of an INVITE, computed from a
// request as a CANCEL's matches its INVITE (RFC 3261 §9.2, §17.2.3): the top
// Via's branch and sent-by; for an RFC 2543 branch (no magic cookie), the
// Call-ID, From tag, CSeq number and top Via as well.
func inviteKey(req *sip.Request) string {
	via := req.Via()
	if via == nil || req.CSeq() == nil || req.CallID() == nil {
		return ""
	}
	branch, _ := via.Params.Get("branch")
	port := via.Port
	if port == 0 {
		port = sip.DefaultPort(via.Transport)
	}
	key := branch + "|" + strings.ToLower(via.Host) + ":" + strconv.Itoa(port)
	if strings.HasPrefix(branch, ids.BranchCookie) && len(branch) > len(ids.BranchCookie) {
		return key
	}
	fromTag := ""
	if f := req.From(); f != nil {
		fromTag, _ = f.Params.Get("tag")
	}
	return "2543|" + key + "|" + req.CallID().Value() + "|" + fromTag + "|" + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
}

// trackInvite makes an INVITE's transaction findable by a CANCEL for as long
// as it lives.
func (e *Edge) trackInvite(req *sip.Request, tx sip.ServerTransaction) *inviteRelay {
	inv := &inviteRelay{key: inviteKey(req), cancelled: make(chan *sip.Request, 1)}
	if inv.key != "" { // "" only for a request the checks let through without Via, CSeq or Call-ID
		e.invites.put(inv.key, inv)
		forget := func(string, error) { e.invites.drop(inv.key, inv) }
		if !tx.OnTerminate(forget) {
			forget("", nil)
		}
	}
	// The fallback: a CANCEL sipgo matched itself.
	if srv, ok := tx.(*sip.ServerTx); ok {
		if !srv.OnCancel(inv.take) && srv.Err() == sip.ErrTransactionCanceled {
			inv.take(cancelFor(srv.Origin()))
		}
	}
	return inv
}

// interceptCancel takes a CANCEL off the wire before sipgo sees it: if it
// matches an INVITE the edge relays, the 200 is written back with write and
// then the CANCEL is passed to that INVITE's relay, in that order (the role's
// 487 must not overtake the 200). taken is false otherwise, and the CANCEL goes
// on to sipgo (which answers 481, or handles an INVITE the edge does not track).
func (e *Edge) interceptCancel(data []byte, transport string, remote net.Addr, write func([]byte) error) (taken bool) {
	msg, err := sip.ParseMessage(data)
	if err != nil {
		return false
	}
	c, ok := msg.(*sip.Request)
	if !ok || !c.IsCancel() || c.CSeq() == nil || c.CallID() == nil {
		return false
	}
	inv := e.invites.get(inviteKey(c))
	if inv == nil {
		return false
	}
	c.SetTransport(strings.ToUpper(transport))
	c.SetSource(remote.String())
	e.metrics.Requests.WithLabelValues(wire.RoleEdge, "CANCEL").Inc()
	ok200 := sip.NewResponseFromRequest(c, 200, "OK", nil)
	if tag := inv.tag(); tag != "" {
		ok200.To().Params.Add("tag", tag) // the provisional responses' tag (§9.2)
	}
	ok200.AppendHeader(sip.NewHeader("Server", e.userAgent))
	if err := write([]byte(ok200.String())); err != nil {
		e.log.Debug("200 to CANCEL not written", "remote", remote, "error", err)
	} else {
		e.countResponse(sip.CANCEL, 200)
	}
	inv.take(c)
	return true
}

// forwardCancel passes cancel to the replica of role that holds its INVITE.
func (e *Edge) forwardCancel(role, replica string, inv *inviteRelay, cancel *sip.Request) {
	h := e.busHeader(cancel)
	h[wire.HdrTx] = []string{inv.key}
	err := e.nc.PublishMsg(&nats.Msg{Subject: wire.Replica(role, replica), Header: h, Data: []byte(cancel.String())})
	if err != nil {
		e.log.Warn("forward CANCEL failed", "to", role, "replica", replica, "error", err)
	}
}

// terminated answers a cancelled INVITE 487 for a role that did not: with the
// tag of its provisional responses, if it sent any.
func (e *Edge) terminated(req *sip.Request, tx sip.ServerTransaction, inv *inviteRelay) {
	res := sipmsg.NewResponse(req, 487, "Request Terminated", nil, e.ids)
	if tag := inv.tag(); tag != "" {
		res.To().Params.Add("tag", tag) // replaces the one NewResponse drew
	}
	res.AppendHeader(sipmsg.Warning(e.cfg.ID, "the role did not answer the CANCEL"))
	res.AppendHeader(sip.NewHeader("Server", e.userAgent))
	if err := e.respond(req, tx, res, nil); err == nil {
		e.countResponse(req.Method, 487)
	}
}

// cancelFromSipgo reports whether sipgo already answered the CANCEL (the
// fallback path): then the transaction is over and only the role is told.
func cancelFromSipgo(tx sip.ServerTransaction) bool {
	srv, ok := tx.(*sip.ServerTx)
	return ok && srv.Err() == sip.ErrTransactionCanceled
}

// ackKey names the ACK of one 2xx: a forked INVITE's 2xx responses differ
// by To tag, and each dialog's ACK stops only its own.
func ackKey(callID string, cseq uint32, toTag string) string {
	return callID + " " + strconv.FormatUint(uint64(cseq), 10) + " " + toTag
}

func msgToTag(m sip.Message) string {
	if to := m.To(); to != nil {
		tag, _ := to.Params.Get("tag")
		return tag
	}
	return ""
}

// acked stops the 2xx retransmission the ACK ack answers, if any.
func (e *Edge) acked(ack *sip.Request) {
	callID, cseq := ack.CallID(), ack.CSeq()
	if callID == nil || cseq == nil {
		return
	}
	if c, ok := e.acks.take(ackKey(callID.Value(), cseq.SeqNo, msgToTag(ack))); ok {
		close(c)
	}
}

// expectACK registers the wait for the ACK of the 2xx res to req before res
// is sent, so an ACK that comes at once finds it.
func (e *Edge) expectACK(req *sip.Request, res *sip.Response) (key string, ack chan struct{}) {
	key, ack = ackKey(req.CallID().Value(), req.CSeq().SeqNo, msgToTag(res)), make(chan struct{})
	e.acks.put(key, ack)
	return key, ack
}

// acceptedInvite retransmits the 2xx res on tx until its ACK comes, then ends
// the transaction. sipgo would keep it in Accepted for Timer L to absorb
// retransmitted INVITEs; once the ACK is here none can come, and 32 s of
// transactions at thousands of calls a second is most of the edge's heap.
//
// With more (the role said wire.HdrMore: a forking proxy), the role's further
// 2xx from other branches are relayed too, each retransmitted until its own
// ACK (RFC 6026 §7.1: the Accepted state passes them on), until the role's end
// marker or 64·T1 (Timer L).
func (e *Edge) acceptedInvite(req *sip.Request, tx sip.ServerTransaction, res *sip.Response, key string, ack chan struct{}, more <-chan *nats.Msg) {
	if more == nil {
		if e.retransmit2xx(req, tx, res, key, ack) {
			tx.Terminate()
		}
		return
	}
	var wg sync.WaitGroup
	var unacked atomic.Int32
	retransmit := func(res *sip.Response, key string, ack chan struct{}) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !e.retransmit2xx(req, tx, res, key, ack) {
				unacked.Add(1)
			}
		}()
	}
	retransmit(res, key, ack)
	sent := map[string]bool{msgToTag(res): true}
	timerL := e.clock.NewTimer(64 * sip.T1)
	defer timerL.Stop()
reading:
	for {
		select {
		case m := <-more:
			if m.Header.Get(wire.HdrEnd) != "" || bus.IsNoResponders(m) {
				break reading
			}
			res, err := roleResponse(m.Data, req)
			if err != nil || !res.IsSuccess() || sent[msgToTag(res)] {
				continue // a retransmission: its own is running
			}
			sent[msgToTag(res)] = true
			key, ack := e.expectACK(req, res)
			if err := e.respond(req, tx, res, nil); err != nil {
				e.acks.drop(key, ack)
				continue
			}
			e.countResponse(req.Method, res.StatusCode)
			retransmit(res, key, ack)
		case <-timerL.Chan():
			break reading
		case <-tx.Done():
			break reading
		}
	}
	wg.Wait()
	if unacked.Load() == 0 {
		tx.Terminate()
	}
}

// retransmit2xx sends res again at T1, 2·T1, … capped at T2 until its ACK
// comes or 64·T1 has passed (RFC 3261 §13.3.1.4: over every transport, as a
// hop further on may be UDP). It reports whether the ACK came.
func (e *Edge) retransmit2xx(req *sip.Request, tx sip.ServerTransaction, res *sip.Response, key string, ack chan struct{}) bool {
	defer e.acks.drop(key, ack)
	giveUp := e.clock.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	interval := sip.T1
	next := e.clock.NewTimer(interval)
	defer next.Stop()
	for {
		select {
		case <-ack:
			return true
		case <-giveUp.Chan():
			e.log.Info("no ACK for a 2xx", "call_id", req.CallID().Value())
			return false
		case <-tx.Done():
			return false
		case <-next.Chan():
			if err := tx.Respond(res); err != nil {
				return false
			}
			interval = min(2*interval, sip.T2)
			next.Reset(interval)
		}
	}
}
