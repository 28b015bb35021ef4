package b2bua

import (
	"context"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// Reliable provisional responses (RFC 3262) are per leg: the callee's are
// PRACKed by the b2bua, and the caller gets its own when it supports them,
// each PRACKed by the caller before the next goes.

// prackWait bounds how long a reliable provisional is retransmitted without a
// PRACK before the caller's INVITE is refused (RFC 3262 §3: 64·T1).
var prackWait = 64 * sip.T1

// reliableToCaller says the caller takes reliable provisional responses.
func reliableToCaller(r *sipbus.Request) bool {
	return sipmsg.HasOptionTag(r.Request, "Supported", "100rel") || sipmsg.HasOptionTag(r.Request, "Require", "100rel")
}

// toCallerReliably sends prov as a reliable provisional (Require: 100rel,
// RSeq) and, over UDP, again at T1, 2·T1, … until the caller's PRACK names
// it (RFC 3262 §3). It reports false when none came in 64·T1, or the call was
// cancelled meanwhile.
func (c *call) toCallerReliably(prov *sip.Response) bool {
	b := c.b
	c.rseq++
	rseq := c.rseq
	prov.AppendHeader(sip.NewHeader("Require", "100rel"))
	prov.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(rseq), 10)))
	b.respond(c.r, prov)
	giveUp := b.clock.NewTimer(prackWait)
	defer giveUp.Stop()
	interval := sip.T1
	resend := b.clock.NewTimer(interval)
	defer resend.Stop()
	resendC := resend.Chan()
	if !strings.EqualFold(c.r.Transport, "udp") {
		resendC = nil // a reliable transport delivers it once
	}
	for {
		select {
		case n := <-c.pracked:
			if n == rseq {
				return true
			}
		case <-resendC:
			if err := c.r.Respond(prov); err != nil {
				b.log.Info("reliable provisional not resent", "error", err)
			}
			interval *= 2
			resend.Reset(interval)
		case <-giveUp.Chan():
			return false
		case <-c.cancelling:
			return false
		}
	}
}

// prack takes the caller's PRACK of a reliable provisional: 200, and the
// replica holding the INVITE is told (on its own subject when another).
func (b *B2BUA) prack(r *sipbus.Request) {
	c, cancel := ctx()
	defer cancel()
	br, s, ok := b.inCallOrRefuse(c, r)
	if !ok {
		return
	}
	rseq, ok := rackRSeq(r.Request)
	if s != sideA || !ok {
		b.refuse(r, 481, "Call/Transaction Does Not Exist", "no reliable provisional of the b2bua's has this RAck")
		return
	}
	b.respond(r, sip.NewResponseFromRequest(r.Request, 200, "OK", nil))
	if br.Replica == b.replica {
		b.pracked(br.ID, rseq)
		return
	}
	if br.Replica != "" {
		if err := b.publish(&nats.Msg{Subject: wire.Replica(wire.RoleB2BUA, br.Replica), Data: []byte(r.String())}); err != nil {
			b.log.Warn("PRACK not passed to the replica holding the INVITE", "replica", br.Replica, "error", err)
		}
	}
}

// pracked hands rseq to the call id this replica holds.
func (b *B2BUA) pracked(id string, rseq uint32) {
	if v, ok := b.pracks.Load(id); ok {
		select {
		case v.(*call).pracked <- rseq:
		default:
		}
	}
}

// rackRSeq is the RSeq a PRACK's RAck names ("response-num CSeq-num Method", RFC 3262 §7.2).
func rackRSeq(req *sip.Request) (uint32, bool) {
	h := req.GetHeader("RAck")
	if h == nil {
		return 0, false
	}
	f := strings.Fields(h.Value())
	if len(f) != 3 || !strings.EqualFold(f[2], "INVITE") {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	return uint32(n), err == nil
}

// prackCallee PRACKs a reliable provisional of the callee's branch, in the
// early dialog it made (its tag, Contact and Record-Route).
func (c *call) prackCallee(branch int, res uac.Response) {
	b := c.b
	rseq := res.GetHeader("RSeq")
	if rseq == nil {
		return
	}
	c.mu.Lock()
	via := c.vias[branch]
	c.mu.Unlock()
	leg := c.br.B
	leg.RemoteTag = tagOf(res.To().Params)
	if ct := res.Contact(); ct != nil {
		leg.RemoteTarget = ct.Address.String()
	}
	leg.RouteSet = nil
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		leg.RouteSet = append(leg.RouteSet, rr[i].Value())
	}
	req, err := legDialog(leg, b.userAgent).Request(sip.PRACK, c.nextCSeq(), "", nil)
	if err != nil {
		b.log.Warn("PRACK not built", "id", c.br.ID, "error", err)
		return
	}
	req.AppendHeader(sip.NewHeader("RAck", strings.TrimSpace(rseq.Value())+" "+strconv.FormatUint(uint64(res.CSeq().SeqNo), 10)+" INVITE"))
	via.Edge = res.Edge
	go func() {
		cc, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if _, err := b.send.Do(cc, req, via, nil); err != nil {
			b.log.Info("PRACK to the callee not answered", "id", c.br.ID, "error", err)
		}
	}()
}
