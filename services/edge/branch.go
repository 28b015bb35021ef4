package edge

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// A branch is one client transaction the edge runs for a role: the role sees
// every response (each named by this edge and the branch), may CANCEL it, and
// the edge applies what RFC 3261 asks of the element that holds a branch:
//   - Timer C (§16.6 step 11, §16.8): reset by every provisional response; when
//     it fires, a branch that had one is CANCELled and the role told 408, a
//     branch that had none ends as if it got 408.
//   - CANCEL only after a provisional response (§9.1); a final response with no
//     CANCEL answered for 64·T1 ends the branch (the role is told 487).
//   - Non-2xx finals are ACKed (and their retransmissions re-ACKed until Timer
//     D) by sipgo's INVITE client transaction; every 2xx, of every fork and each
//     retransmission, goes to the role until Timer M (RFC 6026), since only the
//     role can ACK it.
//   - The asking replica gone (liveness.go): its ringing branches are CANCELled.

type branch struct {
	e     *Edge
	id    string       // the branch parameter of the edge's Via
	req   *sip.Request // as sent
	reply string       // where the asker reads responses
	// upstream is the edge (and flow) a forwarded request came in through.
	upstream string
	invite   bool
	tx       sip.ClientTransaction

	mu           sync.Mutex
	provisional  bool   // a provisional response came: CANCEL may be sent
	final        bool   // a final response came
	told         bool   // the role was given a final the edge made up: no other non-2xx goes to it
	cancelWanted bool   // CANCEL asked for, sent once a provisional comes
	reason       string // its Reason header value
	cancelSent   bool
	ended        bool // the stream's end was sent
	timerC       clockwork.Timer
	giveUp       clockwork.Timer
	unwatch      func()
}

// sendRequest runs req's client transaction and streams every response to
// reply; upstream is a forwarded request's way back (wire.HdrUpstream).
func (e *Edge) sendRequest(req *sip.Request, reply, upstream string) {
	b := &branch{e: e, reply: reply, req: req, invite: req.IsInvite(), upstream: upstream}
	b.id, _ = req.Via().Params.Get("branch")
	tx, err := e.client.TransactionRequest(context.Background(), req, noBuild)
	if err != nil {
		b.synthesize(503, "Service Unavailable", wire.ErrTransport, "could not send to "+req.Destination()+": "+err.Error())
		b.end()
		return
	}
	b.tx = tx
	e.branches.put(b.id, b)
	if b.invite {
		// The branch notice: the role can cancel from now on.
		e.publishReply(reply, b.header(), nil)
		b.mu.Lock()
		b.timerC = e.clock.AfterFunc(e.cfg.TimerC, b.timerCFired)
		b.unwatch = e.prober.watch(inbox(reply), reply, b, func() {
			_ = b.cancel(cancelAskerGone, `SIP;cause=503;text="the role replica that placed the call is gone"`)
		})
		b.mu.Unlock()
		// In Accepted, sipgo hands each further 2xx (a retransmission, or
		// another fork's from a forking proxy downstream) to this hook only.
		tx.OnRetransmission(b.accepted)
	}
	lingering := false
	defer func() {
		if !lingering {
			b.stopTimers()
			e.branches.drop(b.id, b)
		}
	}()
	for {
		select {
		case res := <-tx.Responses():
			b.received(res)
			if res.StatusCode < 200 {
				continue
			}
			if b.invite {
				// The transaction lingers (Accepted until Timer M after a 2xx,
				// Completed until Timer D after another final); what it still
				// gets goes to the hook, so no goroutine need wait that out.
				lingering = true
				b.stopTimers()
				b.linger()
			}
			return
		case <-tx.Done():
			b.transactionOver(tx.Err())
			return
		}
	}
}

// linger ends the branch when sipgo ends its transaction.
func (b *branch) linger() {
	over := func(_ string, err error) {
		b.transactionOver(err)
		b.e.branches.drop(b.id, b)
	}
	if !b.tx.OnTerminate(over) {
		over("", b.tx.Err())
	}
}

// header names this edge and branch on every message of the stream.
func (b *branch) header() nats.Header {
	return nats.Header{wire.HdrEdge: {b.e.cfg.ID}, wire.HdrBranch: {b.id}}
}

// received takes one response from the transaction.
func (b *branch) received(res *sip.Response) {
	b.mu.Lock()
	relay := true
	switch {
	case res.StatusCode < 200:
		b.provisional = true
		if b.timerC != nil && res.StatusCode > 100 { // §16.7 step 2: 101 to 199
			b.timerC.Reset(b.e.cfg.TimerC)
		}
		if b.cancelWanted && !b.cancelSent {
			b.sendCancelLocked()
		}
	default:
		b.final = true
		relay = res.IsSuccess() || !b.told
		b.stopTimersLocked()
	}
	// After a non-2xx final nothing more reaches the role (sipgo ACKs its
	// retransmissions), so an INVITE's stream ends here, not at Timer D.
	end := b.invite && res.StatusCode >= 300 && !b.ended
	if end {
		b.ended = true
	}
	b.mu.Unlock()
	if relay {
		b.relay(res)
	}
	if end {
		b.end()
	}
}

// accepted takes a 2xx after the first. Of a request the role forwarded (a Via
// below the edge's), it goes upstream statelessly along the Vias, as RFC 6026
// §7.2 has a proxy do: the caller re-ACKs a retransmission, so an ACK lost on
// the way to the callee is sent again, and the role need not keep reading its
// branches until Timer M. Of a request the role made, it goes to the role,
// whose UAC ACKs it (RFC 3261 §13.2.2.4).
func (b *branch) accepted(res *sip.Response) {
	if len(b.req.GetHeaders("Via")) < 2 {
		b.relay(res)
		return
	}
	up := res.Clone()
	up.RemoveHeader("Via") // the first one only: the edge's own
	// Through the edge the request came in by, over its flow: from another
	// address a NATed caller drops it, and a caller's connection is there.
	edge, flow, _ := strings.Cut(b.upstream, " ")
	h := micro.Headers{}
	if flow != "" {
		h[wire.HdrFlow] = []string{flow}
	}
	var err error
	if edge == "" || edge == b.e.cfg.ID {
		err = b.e.sendResponse(up, h)
	} else {
		err = b.e.nc.PublishMsg(&nats.Msg{Subject: wire.EdgeSend(edge), Header: nats.Header(h), Data: []byte(up.String())})
	}
	if err != nil {
		b.e.log.Info("2xx retransmission not forwarded upstream", "branch", b.id, "error", err)
	}
}

// relay passes a response to the asker without the edge's own Via.
func (b *branch) relay(res *sip.Response) {
	res = res.Clone()
	res.RemoveHeader("Via")
	b.e.publishReply(b.reply, b.header(), []byte(res.String()))
}

// transactionOver ends the stream once sipgo's transaction has ended.
func (b *branch) transactionOver(err error) {
	b.mu.Lock()
	final, told, cancelled, ended := b.final, b.told, b.cancelSent, b.ended
	b.told, b.ended = true, true
	b.mu.Unlock()
	if ended {
		return
	}
	if !final && !told {
		switch {
		case errors.Is(err, sip.ErrTransactionTimeout) && cancelled:
			b.synthesize(487, "Request Terminated", wire.ErrCancelled, "CANCELled; no final response from "+b.req.Destination())
		case errors.Is(err, sip.ErrTransactionTimeout):
			b.synthesize(408, "Request Timeout", wire.ErrTimeout, "no response from "+b.req.Destination())
		default:
			b.synthesize(503, "Service Unavailable", wire.ErrTransport, "transport to "+b.req.Destination()+" failed")
		}
	}
	b.end()
}

// end closes an INVITE's stream (a non-INVITE's ends with its final response).
func (b *branch) end() {
	if b.invite {
		h := b.header()
		h[wire.HdrEnd] = []string{"1"}
		b.e.publishReply(b.reply, h, nil)
	}
}

// synthesize tells the role the branch failed, as a SIP response it handles
// like any other: code why (wire.Err*) in HdrError, the detail in a Warning.
func (b *branch) synthesize(code int, reason, why, detail string) {
	res := sip.NewResponseFromRequest(b.req, code, reason, nil)
	res.RemoveHeader("Via")
	res.AppendHeader(sipmsg.Warning(b.e.cfg.ID, detail))
	h := b.header()
	h[wire.HdrError] = []string{why}
	b.e.publishReply(b.reply, h, []byte(res.String()))
}

// timerCFired applies §16.8.
func (b *branch) timerCFired() {
	b.mu.Lock()
	if b.final || b.told || b.cancelWanted {
		// Answered, told already, or CANCELled at the role's word: then the
		// role waits for the 487 (or gaveUp's).
		b.mu.Unlock()
		return
	}
	b.told = true
	if !b.provisional {
		// No provisional response: as if the branch got 408; nothing to CANCEL.
		b.mu.Unlock()
		b.synthesize(408, "Request Timeout", wire.ErrTimerC, "no provisional response within --timer-c")
		b.tx.Terminate()
		return
	}
	b.reason = `SIP;cause=408;text="Timer C"`
	b.cancelWanted = true
	b.e.branchesCancelled.WithLabelValues(cancelTimerC).Inc()
	b.sendCancelLocked()
	b.mu.Unlock()
	b.synthesize(408, "Request Timeout", wire.ErrTimerC, "no final response within --timer-c: CANCELled")
}

// Why the edge cancels a branch: the label of siphon_edge_branches_cancelled_total.
const (
	cancelByRole    = "role"
	cancelTimerC    = "timer-c"
	cancelAskerGone = "asker-gone"
)

// cancel asks for the branch to be CANCELled (why: one of cancel*; reason the
// Reason header): at once when a provisional response came, else once one
// does (§9.1). Once a final came there is nothing to cancel: it reports false.
func (b *branch) cancel(why, reason string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.final {
		return false
	}
	if b.cancelWanted {
		return true
	}
	b.e.branchesCancelled.WithLabelValues(why).Inc()
	b.cancelWanted, b.reason = true, reason
	if b.provisional {
		b.sendCancelLocked()
	}
	return true
}

// sendCancelLocked sends the CANCEL of §9.1 as its own client transaction and
// gives the INVITE 64·T1 more for its final response.
func (b *branch) sendCancelLocked() {
	b.cancelSent = true
	c := cancelFor(b.req)
	if b.reason != "" {
		c.AppendHeader(sip.NewHeader("Reason", b.reason))
	}
	c.SetDestination(b.req.Destination())
	c.Laddr = b.req.Laddr
	b.giveUp = b.e.clock.AfterFunc(64*sip.T1, b.gaveUp)
	go func() {
		tx, err := b.e.client.TransactionRequest(context.Background(), c, noBuild)
		if err != nil {
			b.e.log.Warn("CANCEL not sent", "branch", b.id, "error", err)
			return
		}
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses(): // its 200 (or 481): the INVITE's final response is what matters
				if res.StatusCode >= 200 {
					return
				}
			case <-tx.Done():
				return
			}
		}
	}()
}

// gaveUp ends a CANCELled branch whose final response never came (§9.1).
func (b *branch) gaveUp() {
	b.mu.Lock()
	if b.final {
		b.mu.Unlock()
		return
	}
	told := b.told
	b.told = true
	b.mu.Unlock()
	if !told {
		b.synthesize(487, "Request Terminated", wire.ErrCancelled, "CANCELled; no final response in 64*T1")
	}
	b.tx.Terminate()
}

func (b *branch) stopTimers() {
	b.mu.Lock()
	b.stopTimersLocked()
	if b.unwatch != nil {
		b.unwatch()
		b.unwatch = nil
	}
	b.mu.Unlock()
}

func (b *branch) stopTimersLocked() {
	if b.timerC != nil {
		b.timerC.Stop()
	}
	if b.giveUp != nil {
		b.giveUp.Stop()
	}
}

// cancelFor builds the CANCEL RFC 3261 §9.1 sends for invite: its
// Request-URI, Call-ID, From, To, CSeq number and top Via (the same branch),
// its Route headers. sipgo has such a builder but does not export it.
func cancelFor(invite *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *invite.Recipient.Clone())
	if via := invite.Via(); via != nil {
		c.AppendHeader(via.Clone())
	}
	for _, h := range invite.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(sipmsg.DefaultMaxForwards)
	c.AppendHeader(&mf)
	for _, name := range []string{"From", "To", "Call-ID"} {
		if h := invite.GetHeader(name); h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	c.AppendHeader(&sip.CSeqHeader{SeqNo: invite.CSeq().SeqNo, MethodName: sip.CANCEL})
	c.SetBody(nil)
	c.SetTransport(invite.Transport())
	c.SetSource(invite.Source())
	return c
}
