package b2bua

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// streamBound bounds how long a branch's stream is read: past Timer C
// (3m10s by default) and Timer M, for an edge that died holding it.
const streamBound = 10 * time.Minute

// call is a caller's INVITE this replica holds while the callee's bindings
// ring: one B-leg INVITE branch per binding, in parallel.
type call struct {
	b      *B2BUA
	r      *sipbus.Request
	br     *store.Bridge
	events chan branchEvent

	mu         sync.Mutex
	txs        []*uac.Tx
	vias       []uac.Via
	transports []string       // each branch's transport when over a connection
	reqs       []*sip.Request // each branch's INVITE as last sent
	user       string         // the called user, whose credentials answer a challenge
	cseq       uint32         // the B leg's last CSeq: INVITEs again, PRACKs
	// The caller's reliable provisionals: the last RSeq and the PRACKs
	// that come for them; cancelling is closed when the caller CANCELs.
	reliable   bool
	rseq       uint32
	pracked    chan uint32
	cancelling chan struct{}
	winner     int // the branch whose 2xx was bridged, -1 before
	cancelled  bool
}

// branchEvent is a response (or the end) of one B-leg branch.
type branchEvent struct {
	branch int
	res    uac.Response
	end    bool
}

// invite serves an INVITE: outside a dialog a new call, bridged to the
// callee's bindings; inside one a re-INVITE, relayed to the other leg.
func (b *B2BUA) invite(r *sipbus.Request) {
	if tag, ok := r.To().Params.Get("tag"); ok && tag != "" {
		b.relay(r)
		return
	}
	if r.Contact() == nil {
		b.refuse(r, 400, "Bad Request", "an INVITE must carry a Contact (RFC 3261 §8.1.1.8)")
		return
	}
	aor, _, err := sipmsg.AddressOfRecord(r.Recipient)
	if err != nil {
		b.refuse(r, 404, "Not Found", "no such user: "+err.Error())
		return
	}
	c, cancel := ctx()
	defer cancel()
	bindings, err := b.loc.Lookup(c, aor, b.clock.Now())
	if err != nil {
		b.log.Error("location lookup", "aor", aor, "error", err)
		b.refuse(r, 500, "Server Internal Error", "location store unavailable")
		return
	}
	if len(bindings) == 0 {
		b.refuse(r, 404, "Not Found", aor+" has no registered contact")
		return
	}
	b.respond(r, sip.NewResponseFromRequest(r.Request, 100, "Trying", nil))
	br := b.newBridge(r)
	if err := b.bridges.Create(c, br); err != nil {
		b.log.Error("store call", "error", err)
		b.refuse(r, 500, "Server Internal Error", "call store unavailable")
		return
	}
	_, user, _ := sipmsg.AddressOfRecord(r.Recipient)
	cl := &call{b: b, r: r, br: br, events: make(chan branchEvent, 16), winner: -1, user: user, cseq: br.InviteCSeq,
		reliable: reliableToCaller(r), rseq: firstRSeq(br.ID), pracked: make(chan uint32, 4), cancelling: make(chan struct{})}
	if r.Tx != "" {
		b.ringing.Store(r.Tx, cl)
	}
	b.pracks.Store(br.ID, cl)
	for _, bd := range bindings {
		cl.start(bd)
	}
	go cl.run(len(bindings))
}

// newBridge is the call r starts: the A leg as r made it, the B leg the
// b2bua's own (Call-ID, tag, CSeq; the caller's From and To as identities).
func (b *B2BUA) newBridge(r *sipbus.Request) *store.Bridge {
	id, now := b.ids.Tag(), b.clock.Now()
	fromTag, _ := r.From().Params.Get("tag")
	var routes []string
	for _, h := range r.GetHeaders("Record-Route") {
		routes = append(routes, h.Value())
	}
	from, to := nameAddr(r.From().DisplayName, r.From().Address), nameAddr(r.To().DisplayName, r.To().Address)
	host := r.Reachable()
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return &store.Bridge{
		ID: id, State: store.BridgeEarly, InviteCSeq: 1, LateOffer: len(r.Body()) == 0, Replica: b.replica,
		A: store.Leg{CallID: r.CallID().Value(), LocalTag: id, RemoteTag: fromTag, LocalURI: to, RemoteURI: from,
			RemoteTarget: r.Contact().Address.String(), RouteSet: routes, RemoteCSeq: r.CSeq().SeqNo,
			Edge: r.Edge, Transport: r.Transport, Flow: r.Flow, Local: r.Reachable()},
		B: store.Leg{CallID: b.ids.CallID(strings.Trim(host, "[]")), LocalTag: id, LocalURI: from, RemoteURI: to,
			LocalCSeq: 1, Local: r.Reachable()},
		Created: now, Expires: now.Add(forgetAfter),
	}
}

func nameAddr(display string, u sip.Uri) string {
	v := "<" + u.String() + ">"
	if display != "" {
		v = `"` + display + `" ` + v
	}
	return v
}

// start sends the B leg's INVITE to one binding.
func (c *call) start(bd store.Binding) {
	b, i := c.b, len(c.txs)
	leg := c.br.B
	leg.RemoteTarget, leg.RouteSet = bd.Contact, bd.Path
	ct := ""
	if h := c.r.ContentType(); h != nil {
		ct = h.Value()
	}
	via := uac.Via{Edge: c.r.Edge}
	// A connection the callee opened (TCP, TLS, WS), or an RFC 5626 flow, is
	// the only way to it; over plain UDP its Contact is.
	if bd.Flow != "" && (!strings.EqualFold(bd.Transport, "udp") || bd.RegID != 0) {
		via = uac.Via{Edge: bd.Edge, Flow: bd.Flow}
		leg.Transport = strings.ToLower(bd.Transport)
	}
	req, err := legDialog(leg, b.userAgent).Request(sip.INVITE, c.br.InviteCSeq, ct, c.r.Body())
	c.mu.Lock()
	c.txs, c.vias, c.transports, c.reqs = append(c.txs, nil), append(c.vias, via), append(c.transports, leg.Transport), append(c.reqs, req)
	c.mu.Unlock()
	if err != nil {
		b.log.Warn("B-leg INVITE not built", "contact", bd.Contact, "error", err)
		c.failed(i, 400, "Bad Request")
		return
	}
	// Reliable provisionals are the b2bua's to PRACK on this leg (RFC 3262),
	// and with session timers the b2bua refreshes it (RFC 4028).
	if b.cfg.SessionExpires > 0 {
		req.AppendHeader(sip.NewHeader("Supported", "100rel, timer"))
		req.AppendHeader(b.sessionExpires("uac"))
	} else {
		req.AppendHeader(sip.NewHeader("Supported", "100rel"))
	}
	for _, name := range []string{"Allow", "Subject", "Priority", "Accept"} {
		for _, h := range c.r.GetHeaders(name) {
			req.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	c.send(i, req, via)
}

// send sends branch i's INVITE and reads its responses into c.events until
// the edge ends the stream.
func (c *call) send(i int, req *sip.Request, via uac.Via) {
	b := c.b
	tx, err := b.send.Send(req, via)
	if err != nil {
		b.log.Warn("B-leg INVITE not sent", "target", req.Recipient.String(), "error", err)
		c.failed(i, 503, "Service Unavailable")
		return
	}
	c.mu.Lock()
	c.txs[i], c.reqs[i] = tx, req
	cancelled := c.cancelled || c.winner >= 0
	c.mu.Unlock()
	if cancelled { // cancelAll came before this branch had its transaction
		go func() {
			cc, cancel := ctx()
			defer cancel()
			_ = tx.Cancel(cc, "")
		}()
	}
	go func() {
		defer tx.Close()
		// The edge ends every stream (Timer C, then Timer M); the bound is
		// for an edge that died holding it.
		sctx, cancel := context.WithTimeout(context.Background(), streamBound)
		defer cancel()
		for {
			res, err := tx.Next(sctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					b.log.Info("B-leg branch stream", "error", err)
				}
				c.events <- branchEvent{branch: i, end: true}
				return
			}
			c.events <- branchEvent{branch: i, res: res}
		}
	}()
}

// failed is a branch that never went out: its final is code.
func (c *call) failed(i, code int, reason string) {
	res := sip.NewResponse(code, reason)
	go func() {
		c.events <- branchEvent{branch: i, res: uac.Response{Response: res, Synthesized: wire.ErrTransport}}
		c.events <- branchEvent{branch: i, end: true}
	}()
}

// cancelAll CANCELs every branch still ringing (the caller's CANCEL, or
// another branch's 2xx); each answers 487, and the caller gets the best final.
func (c *call) cancelAll(reason string) {
	c.mu.Lock()
	if c.winner < 0 && !c.cancelled {
		c.cancelled = true
		close(c.cancelling) // a reliable provisional waiting for its PRACK waits no more
	}
	txs := append([]*uac.Tx(nil), c.txs...)
	winner := c.winner
	c.mu.Unlock()
	for i, tx := range txs {
		if tx == nil || i == winner {
			continue
		}
		go func() {
			cc, cancel := ctx()
			defer cancel()
			_ = tx.Cancel(cc, reason)
		}()
	}
}

// run reads every branch until the edge ends it: provisionals go to the
// caller, the first 2xx is bridged, a later 2xx of another branch is ACKed
// and ended, and with no 2xx the caller gets the best final (§16.7 step 6).
func (c *call) run(branches int) {
	b := c.b
	defer b.ringing.Delete(c.r.Tx) // a CANCEL after the answer is the caller's to follow with BYE
	defer b.pracks.Delete(c.br.ID)
	finals := make([]*uac.Response, branches)
	// live counts each branch's open streams: a challenge answered opens a
	// second one, the first still ending.
	live := make([]int, branches)
	for i := range live {
		live[i] = 1
	}
	answered := make([]bool, branches)   // a challenge was answered on the branch
	lastRSeq := make([]uint32, branches) // the callee's last reliable provisional on each branch
	winnerTag := ""
	open, decided := branches, false
	for open > 0 {
		ev := <-c.events
		if ev.end {
			open--
			live[ev.branch]--
			if live[ev.branch] == 0 && finals[ev.branch] == nil && !decided {
				res := uac.Response{Response: sip.NewResponse(500, "Server Internal Error"), Synthesized: wire.ErrTransport}
				finals[ev.branch] = &res
			}
		} else {
			res := ev.res
			switch {
			case res.StatusCode < 200:
				if res.StatusCode > 100 && res.GetHeader("RSeq") != nil && requires100rel(res) {
					rseq, _ := strconv.ParseUint(strings.TrimSpace(res.GetHeader("RSeq").Value()), 10, 32)
					if uint32(rseq) <= lastRSeq[ev.branch] {
						continue // a retransmission: its PRACK is on its way (RFC 3262 §4)
					}
					lastRSeq[ev.branch] = uint32(rseq)
					c.prackCallee(ev.branch, res)
				}
				if decided || res.StatusCode == 100 {
					continue
				}
				if !c.reliable {
					b.respond(c.r, c.toCaller(res))
				} else if !c.toCallerReliably(c.toCaller(res)) && !c.isCancelled() {
					decided = true
					c.cancelAll("")
					// No PRACK in 64·T1 (RFC 3262 §3).
					c.reject(uac.Response{Response: sip.NewResponse(504, "Server Time-out"), Synthesized: wire.ErrTimeout})
				}
				continue
			case res.IsSuccess():
				c.mu.Lock()
				first := c.winner < 0 && !decided
				if first {
					c.winner = ev.branch
				}
				via := c.vias[ev.branch]
				c.mu.Unlock()
				switch {
				case first:
					decided = true
					finals[ev.branch] = &res
					winnerTag = tagOf(res.To().Params)
					c.bridge(ev.branch, res)
					c.cancelAll("")
				case c.winner == ev.branch && tagOf(res.To().Params) == winnerTag:
					c.ackAgain(res) // a retransmission: the ACK was lost
				default:
					// Another fork's, one forked behind the winning binding,
					// or one after the caller had its final: ACK it and
					// BYE it (§13.2.2.4).
					b.endStray(res, via)
				}
				continue
			default:
				if (res.StatusCode == 401 || res.StatusCode == 407) && !decided && !answered[ev.branch] && finals[ev.branch] == nil &&
					c.answerChallenge(ev.branch, res) {
					answered[ev.branch] = true
					live[ev.branch]++
					open++
					continue
				}
				if finals[ev.branch] == nil {
					finals[ev.branch] = &res
				}
				if res.StatusCode >= 600 && !decided {
					c.cancelAll("") // a 6xx ends the search (§16.7 step 5): the others ring no more
				}
			}
		}
		if !decided && allFinal(finals) {
			decided = true
			c.reject(best(finals))
		}
	}
	if !decided {
		c.reject(best(finals))
	}
}

func (c *call) isCancelled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancelled
}

// requires100rel says a response is a reliable provisional (RFC 3262 §7.1).
func requires100rel(res uac.Response) bool {
	for _, h := range res.GetHeaders("Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tag), "100rel") {
				return true
			}
		}
	}
	return false
}

// nextCSeq is the B leg's next CSeq.
func (c *call) nextCSeq() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cseq++
	return c.cseq
}

// firstRSeq is the caller's first RSeq, from the call's id: unpredictable,
// and well below 2^31 (RFC 3262 §3).
func firstRSeq(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() & 0x3fffffff
}

// answerChallenge sends branch's INVITE again with the called user's
// credentials (--b2bua-credentials) answering the callee's 401 or 407, its
// CSeq one higher (RFC 3261 §22.2); without credentials it reports false
// and the challenge goes to the caller.
func (c *call) answerChallenge(branch int, res uac.Response) bool {
	pw, ok := c.b.cfg.credentials[c.user]
	if !ok {
		return false
	}
	challenge, answer := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		challenge, answer = "Proxy-Authenticate", "Proxy-Authorization"
	}
	c.mu.Lock()
	prev, via := c.reqs[branch], c.vias[branch]
	c.mu.Unlock()
	for _, h := range res.GetHeaders(challenge) {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil || !digest.CanDigest(chal) {
			continue
		}
		creds, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: prev.Recipient.String(), Username: c.user, Password: pw, Count: 1})
		if err != nil {
			continue
		}
		req := prev.Clone()
		req.RemoveHeader("Via") // the edge puts its own on the new transaction
		sipmsg.ReplaceHeaders(req, answer, creds.String())
		req.CSeq().SeqNo = c.nextCSeq()
		c.send(branch, req, via)
		return true
	}
	return false
}

func allFinal(finals []*uac.Response) bool {
	for _, f := range finals {
		if f == nil {
			return false
		}
	}
	return true
}

// best is the final response the caller gets when no branch answered: a
// 6xx if any, else the lowest class, 408s and made-up ones last (RFC 3261
// §16.7 step 6).
func best(finals []*uac.Response) uac.Response {
	var pick *uac.Response
	rank := func(r *uac.Response) int {
		switch {
		case r.StatusCode >= 600:
			return 0
		case r.Synthesized != "" || r.StatusCode == 408:
			return 900
		}
		return r.StatusCode
	}
	for _, f := range finals {
		if f != nil && (pick == nil || rank(f) < rank(pick)) {
			pick = f
		}
	}
	if pick == nil {
		return uac.Response{Response: sip.NewResponse(500, "Server Internal Error")}
	}
	return *pick
}

// toCaller is the callee's response as the caller gets it: its status, its
// session description and the headers that are end to end; the b2bua's tag
// and Contact.
func (c *call) toCaller(res uac.Response) *sip.Response {
	out := sip.NewResponseFromRequest(c.r.Request, res.StatusCode, res.Reason, res.Body())
	out.To().Params.Add("tag", c.br.ID)
	if ct := res.ContentType(); ct != nil && len(res.Body()) > 0 {
		out.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	if res.StatusCode < 300 {
		out.AppendHeader(sip.NewHeader("Contact", "<"+contact(c.br.A)+">"))
	}
	for _, name := range endToEnd {
		for _, h := range res.GetHeaders(name) {
			out.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
	return out
}

// endToEnd are the response headers relayed across the b2bua as they came:
// a challenge is the caller's to answer (A's credentials cannot be reused on
// B's leg, whose Request-URI differs), the rest describe the callee.
var endToEnd = []string{"WWW-Authenticate", "Proxy-Authenticate", "Retry-After", "Warning", "Allow", "Supported", "Accept", "Unsupported", "Min-Expires", "Min-SE"}

// bridge takes branch's 2xx: the B leg is the callee's dialog now, ACKed at
// once with an early offer (with a late one, the caller's ACK brings the
// answer), stored confirmed, and the caller gets the 200.
func (c *call) bridge(branch int, res uac.Response) {
	b := c.b
	cc, cancel := ctx()
	defer cancel()
	var routes []string
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- { // a UAC's route set is the reverse (§12.1.2)
		routes = append(routes, rr[i].Value())
	}
	tag, _ := res.To().Params.Get("tag")
	target := ""
	if ct := res.Contact(); ct != nil {
		target = ct.Address.String()
	}
	c.mu.Lock()
	via := c.vias[branch]
	c.mu.Unlock()
	transport := ""
	if via.Flow != "" {
		transport = c.transports[branch]
	}
	now := b.clock.Now()
	br, err := changeHeld(cc, b.bridges, c.br, func(br *store.Bridge) error {
		br.State, br.Replica, br.Answered = store.BridgeConfirmed, "", now
		// The answered INVITE's CSeq (one higher when a challenge was
		// answered on the branch); the leg's, past its PRACKs too.
		c.mu.Lock()
		br.InviteCSeq, br.B.LocalCSeq = res.CSeq().SeqNo, max(res.CSeq().SeqNo, c.cseq)
		c.mu.Unlock()
		br.B.RemoteTag, br.B.RemoteTarget, br.B.RouteSet = tag, target, routes
		br.B.Edge, br.B.Flow, br.B.Transport = res.Edge, via.Flow, transport
		br.Acked = !br.LateOffer
		// What each peer was last given, for a session refresh: the caller
		// the callee's description, the callee the caller's.
		br.A.LocalSDP, br.B.LocalSDP = string(res.Body()), string(c.r.Body())
		if b.cfg.MaxCallDuration > 0 {
			br.EndAt = now.Add(b.cfg.MaxCallDuration)
		}
		if b.cfg.SessionExpires > 0 {
			br.RefreshAt = now.Add(b.interval() / 2)
		}
		due(br)
		return nil
	})
	if err != nil {
		b.log.Warn("call gone before its answer", "id", c.br.ID, "error", err)
		b.endStray(res, via)
		c.respondFinal(500, "Server Internal Error")
		return
	}
	if br.Acked {
		b.sendACK(br, "", nil)
	}
	ok := c.toCaller(res)
	if b.cfg.SessionExpires > 0 {
		ok.AppendHeader(b.sessionExpires("uas"))
		if sipmsg.HasOptionTag(c.r.Request, "Supported", "timer") {
			ok.AppendHeader(sip.NewHeader("Require", "timer"))
		}
	}
	b.respond(c.r, ok)
	b.calls.WithLabelValues("bridged").Inc()
	b.announce(wire.BridgeEvent{Event: wire.EventCallBridged, ID: br.ID, CallerCallID: br.A.CallID, CalleeCallID: br.B.CallID,
		From: br.A.RemoteURI, To: br.A.LocalURI, Callee: target})
}

// ackAgain answers a retransmitted 2xx of the bridged branch with its ACK again.
func (c *call) ackAgain(res uac.Response) {
	b := c.b
	cc, cancel := ctx()
	defer cancel()
	br, err := b.bridges.Get(cc, c.br.ID)
	if err != nil || !br.Acked {
		return // hung up, or the caller's ACK (with the answer) is still to come
	}
	b.sendACK(br, br.AckType, []byte(br.AckBody))
}

// reject gives the caller the best final of branches that all failed.
func (c *call) reject(res uac.Response) {
	b := c.b
	cc, cancel := ctx()
	defer cancel()
	_, _ = b.bridges.Delete(cc, c.br.ID)
	out := c.toCaller(res)
	if res.Synthesized != "" {
		out = sip.NewResponseFromRequest(c.r.Request, res.StatusCode, res.Reason, nil)
		out.To().Params.Add("tag", c.br.ID)
	}
	b.respond(c.r, out)
	b.calls.WithLabelValues(sipClass(res.StatusCode)).Inc()
}

// respondFinal ends the caller's INVITE with a response of the b2bua's own.
func (c *call) respondFinal(code int, reason string) {
	out := sip.NewResponseFromRequest(c.r.Request, code, reason, nil)
	out.To().Params.Add("tag", c.br.ID)
	c.b.respond(c.r, out)
}

func sipClass(code int) string { return string(rune('0'+code/100)) + "xx" }

// sendACK ACKs the B leg's 2xx (RFC 3261 §13.2.2.4): its CSeq number,
// along the leg's route set, with the caller's answer when it made a late offer.
func (b *B2BUA) sendACK(br *store.Bridge, contentType string, body []byte) {
	ack, err := legDialog(br.B, b.userAgent).Request(sip.ACK, br.InviteCSeq, contentType, body)
	if err != nil {
		b.log.Warn("ACK not built", "id", br.ID, "error", err)
		return
	}
	// Posted, not waited for: nobody answers an ACK, and a lost one is
	// repaired when the callee's 2xx comes again (ackAgain).
	if err := b.send.Post(ack, legVia(br.B)); err != nil {
		b.log.Info("ACK not sent", "id", br.ID, "error", err)
	}
}

// changeHeld stores change applied to held, the record as this replica
// stored it, in one trip when nobody changed it since (the common case: a
// call is answered once); else it reads again.
func changeHeld(ctx context.Context, bs store.Bridges, held *store.Bridge, change func(*store.Bridge) error) (*store.Bridge, error) {
	br := *held
	if err := change(&br); err != nil {
		return nil, err
	}
	err := bs.Update(ctx, &br)
	if errors.Is(err, store.ErrBridgeConflict) {
		return store.RetryBridge(ctx, bs, held.ID, change)
	}
	if err != nil {
		return nil, err
	}
	return &br, nil
}

// endStray ACKs a 2xx the b2bua does not want and ends its dialog with BYE,
// by way of the branch's via (its connection, when it has one).
func (b *B2BUA) endStray(res uac.Response, via uac.Via) {
	tag, _ := res.To().Params.Get("tag")
	target := ""
	if ct := res.Contact(); ct != nil {
		target = ct.Address.String()
	}
	var routes []string
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		routes = append(routes, rr[i].Value())
	}
	d := uac.Dialog{CallID: res.CallID().Value(), LocalURI: addressOnly(res.From().Value()), LocalTag: tagOf(res.From().Params),
		RemoteURI: addressOnly(res.To().Value()), RemoteTag: tag, RemoteTarget: target, RouteSet: routes, UserAgent: b.userAgent}
	ack, err := d.Request(sip.ACK, res.CSeq().SeqNo, "", nil)
	if err != nil {
		return
	}
	via.Edge = res.Edge
	cc, cancel := ctx()
	defer cancel()
	if b.send.Stateless(cc, ack, via) != nil {
		return
	}
	bye, err := d.Request(sip.BYE, res.CSeq().SeqNo+1, "", nil)
	if err == nil {
		_, _ = b.send.Do(cc, bye, via, nil)
	}
}

func tagOf(p sip.HeaderParams) string {
	t, _ := p.Get("tag")
	return t
}

// addressOnly is a From or To value without its parameters (the tag goes
// back on by the builder).
func addressOnly(v string) string {
	if i := strings.IndexByte(v, '>'); i >= 0 {
		return v[:i+1]
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[:i]
	}
	return v
}

// legDialog is the request builder's view of a leg.
func legDialog(l store.Leg, userAgent string) uac.Dialog {
	return uac.Dialog{CallID: l.CallID, LocalURI: l.LocalURI, LocalTag: l.LocalTag, RemoteURI: l.RemoteURI, RemoteTag: l.RemoteTag,
		RemoteTarget: l.RemoteTarget, RouteSet: l.RouteSet, Contact: contact(l), UserAgent: userAgent}
}

// contact is the b2bua's Contact on a leg: the edge address the peer
// reaches, with the transport when it is not UDP, so the peer's requests
// in the dialog come back the way it is reached.
func contact(l store.Leg) string {
	c := "sip:b2bua@" + l.Local
	if t := strings.ToLower(l.Transport); t != "" && t != "udp" {
		c += ";transport=" + t
	}
	return c
}

// legVia says which edge reaches a leg's peer: the one owning its
// connection, else the one the leg came through.
func legVia(l store.Leg) uac.Via {
	if l.Flow != "" {
		return uac.Via{Edge: l.Edge, Flow: l.Flow}
	}
	return uac.Via{Edge: l.Edge}
}
