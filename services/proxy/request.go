package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipdns"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// request serves every proxied method (RFC 3261 §16): validated (§16.3), our
// own Route entries taken off (§16.4), then forwarded — to the bindings of our
// user when it is out of a dialog and routed to us (§16.5), else on along its
// Route set or Request-URI.
func (p *Proxy) request(r *sipbus.Request) {
	if r.IsAck() {
		p.ack(r)
		return
	}
	// §16.3 step 4: a request that comes back unchanged through one of our
	// edges has looped; one retargeted on the way spirals, and is served.
	if sipmsg.Looped(r.Request, func(sentBy string) bool {
		host, port, err := net.SplitHostPort(sentBy)
		n, _ := strconv.Atoi(port)
		return err == nil && p.ours(r, host, n)
	}) {
		p.reply(r, 482, "Loop Detected", "this request has been here before, unchanged")
		return
	}
	loopKey := sipmsg.LoopKey(r.Request) // the request as received, for its branches
	if !sipmsg.TakeHop(r.Request) {
		p.reply(r, 483, "Too Many Hops", "Max-Forwards reached 0")
		return
	}
	if missing := sipmsg.Unsupported(r.Request, "Proxy-Require", nil); len(missing) > 0 {
		p.reply(r, 420, "Bad Extension", "unsupported Proxy-Require "+strings.Join(missing, ", "),
			sip.NewHeader("Unsupported", strings.Join(missing, ", ")))
		return
	}
	if !p.authorize(r) {
		return
	}
	breadth, ok := maxBreadth(r.Request)
	if !ok {
		p.reply(r, 400, "Bad Request", "Max-Breadth: want a number from 0 to 2^31-1 (RFC 5393)")
		return
	}
	if r.IsInvite() {
		// Before the location store or DNS is asked: the edge then waits
		// Timer C, not --role-timeout, and the caller stops retransmitting.
		p.relay(r, sip.NewResponseFromRequest(r.Request, 100, "Trying", nil))
	}
	routed := p.popRoutes(r)
	var groups [][]Target
	var bindings map[string]store.Binding
	if r.To().Params.Has("tag") || routed {
		groups = [][]Target{{{Q: 1}}} // on, as addressed: the Request-URI stays
	} else {
		var ok bool
		if groups, bindings, ok = p.targets(r); !ok {
			return
		}
	}
	if widest(groups) > 1 && breadth == 0 {
		// RFC 5393 §5.3.2: no breadth left to fork in parallel with.
		p.reply(r, 440, "Max-Breadth Exceeded", "Max-Breadth 0: this request may not be forked in parallel")
		return
	}
	rc := NewContext(r.IsInvite(), groups)
	if len(groups) > 0 && groups[0][0].Dest != "" {
		rc = NewFailoverContext(r.IsInvite(), servers(groups))
	}
	c := &call{p: p, r: r, ctx: rc, bindings: bindings, loopKey: loopKey, target: r.Recipient.String(),
		breadth: breadth,
		events:  make(chan event, 16), cancelled: make(chan struct{})}
	if r.IsInvite() && r.Tx != "" {
		p.calls.Store(r.Tx, c)
	}
	go c.run()
}

// defaultBreadth is RFC 5393 §5.3.1's recommended local Max-Breadth, used
// when a request carries none.
const defaultBreadth = 60

// maxBreadth is the request's Max-Breadth (RFC 5393), defaultBreadth when it
// has none; ok is false for a value that is not a number.
func maxBreadth(req *sip.Request) (int, bool) {
	h := req.GetHeader("Max-Breadth")
	if h == nil {
		return defaultBreadth, true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(h.Value()), 10, 32)
	return int(n), err == nil && n >= 0
}

// servers flattens the one-server groups foreign made.
func servers(groups [][]Target) []Target {
	out := make([]Target, 0, len(groups))
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// widest is the largest fork group: the most branches that ring at once.
func widest(groups [][]Target) int {
	n := 0
	for _, g := range groups {
		n = max(n, len(g))
	}
	return n
}

// popRoutes takes the Route entries naming this proxy off the top (§16.4)
// and reports whether others remain, which then decide where the request goes.
// A Request-URI of ours with no user (a Record-Route we wrote) came from a
// strict router (RFC 2543; §16.4): the last Route is the real target.
func (p *Proxy) popRoutes(r *sipbus.Request) (routed bool) {
	routes := r.GetHeaders("Route")
	if len(routes) > 0 && r.Recipient.User == "" && r.Recipient.UriParams.Has("lr") && p.edgeAddress(r, r.Recipient.Host, r.Recipient.Port) {
		// Only a value we put in a Record-Route: no user, lr, an edge's address.
		if last, err := uac.RouteURI(routes[len(routes)-1].Value()); err == nil {
			r.Recipient = last
			values := make([]string, 0, len(routes)-1)
			for _, h := range routes[:len(routes)-1] {
				values = append(values, h.Value())
			}
			sipmsg.ReplaceHeaders(r.Request, "Route", values...)
			routes = r.GetHeaders("Route")
		}
	}
	keep := routes[:0:0]
	popping := true
	for _, h := range routes {
		u, err := uac.RouteURI(h.Value())
		if popping && err == nil && p.ours(r, u.Host, u.Port) {
			continue
		}
		popping = false
		keep = append(keep, h)
	}
	if len(keep) == len(routes) {
		return len(routes) > 0
	}
	values := make([]string, 0, len(keep))
	for _, h := range keep {
		values = append(values, h.Value())
	}
	sipmsg.ReplaceHeaders(r.Request, "Route", values...)
	return len(keep) > 0
}

// targets are the bindings of the Request-URI's address-of-record (§16.5),
// in fork groups; it answers the request itself and reports false when there
// are none (404) or the domain is not ours (403).
func (p *Proxy) targets(r *sipbus.Request) ([][]Target, map[string]store.Binding, bool) {
	if !p.ours(r, r.Recipient.Host, r.Recipient.Port) {
		if p.dns == nil {
			p.reply(r, 403, "Forbidden", "this proxy serves "+p.cfg.Domains+" and its own addresses, not "+r.Recipient.Host+" (--foreign-domains refuse)")
			return nil, nil, false
		}
		return p.foreign(r)
	}
	aor, _, err := sipmsg.AddressOfRecord(r.Recipient)
	if err != nil {
		p.reply(r, 416, "Unsupported URI Scheme", err.Error())
		return nil, nil, false
	}
	ctx, cancel := p.ctx()
	defer cancel()
	bs, err := p.loc.Lookup(ctx, aor, p.clock.Now())
	if err != nil {
		p.log.Error("location lookup failed", "aor", aor, "error", err)
		p.reply(r, 500, "Server Internal Error", "location store unavailable", sip.NewHeader("Retry-After", "5"))
		return nil, nil, false
	}
	if len(bs) == 0 {
		if p.users(r.Recipient.User) {
			// A user of ours, not registered now (§21.4.18).
			p.reply(r, 480, "Temporarily Unavailable", r.Recipient.User+" has no binding now")
		} else {
			p.reply(r, 404, "Not Found", "no binding for "+aor)
		}
		return nil, nil, false
	}
	store.SortByQ(bs)
	targets := make([]Target, 0, len(bs))
	bindings := make(map[string]store.Binding, len(bs))
	for _, b := range bs {
		targets = append(targets, Target{URI: b.Contact, Q: b.EffectiveQ()})
		bindings[b.Contact] = b
	}
	return p.cfg.groups(targets), bindings, true
}

// foreign finds the servers of a Request-URI not ours (RFC 3263), tried in
// turn; it answers the request itself when there are none.
func (p *Proxy) foreign(r *sipbus.Request) ([][]Target, map[string]store.Binding, bool) {
	ctx, cancel := p.ctx()
	defer cancel()
	servers, err := p.dns.Resolve(ctx, r.Recipient)
	switch {
	case errors.Is(err, sipdns.ErrNoServer):
		p.reply(r, 404, "Not Found", "no SIP server for "+r.Recipient.Host+" (RFC 3263: NAPTR, SRV, A/AAAA)")
		return nil, nil, false
	case err != nil:
		p.log.Warn("RFC 3263 lookup failed", "host", r.Recipient.Host, "error", err)
		p.reply(r, 503, "Service Unavailable", "DNS lookup of "+r.Recipient.Host+" failed", sip.NewHeader("Retry-After", "5"))
		return nil, nil, false
	}
	var groups [][]Target
	for _, s := range servers {
		groups = append(groups, []Target{{Q: 1, Dest: s.Transport + ":" + s.Addr}})
	}
	return groups, nil, true
}

// call is one request being forwarded: its response context and branches.
type call struct {
	p        *Proxy
	r        *sipbus.Request
	ctx      *Context
	bindings map[string]store.Binding
	target   string          // the Request-URI as received
	breadth  int             // Max-Breadth shared by the branches that ring at once (RFC 5393)
	loopKey  string          // of the request as received: every branch carries it (§16.6 step 8)
	group    clockwork.Timer // the current serial group's --fork-group-timeout, if one follows

	txs       []*uac.Tx
	tried     []string // the targets' URIs, by branch
	announced bool     // call.routed went out
	events    chan event
	cancelled chan struct{}
	once      sync.Once
	readers   int
}

// event is what one branch's stream gave.
type event struct {
	branch int
	res    uac.Response
	ended  bool // the stream is over
}

func (c *call) cancel() { c.once.Do(func() { close(c.cancelled) }) }

// run carries out the context's effects until every branch's stream has ended.
func (c *call) run() {
	defer func() {
		if c.r.Tx != "" {
			c.p.calls.Delete(c.r.Tx)
		}
		if c.group != nil {
			c.group.Stop()
		}
		if c.r.IsInvite() {
			c.p.branches.Observe(float64(len(c.txs)))
		}
	}()
	c.apply(c.ctx.Start())
	finals := map[int]bool{}
	made := map[int]bool{} // branches whose final the edge made up
	closed := false
	for c.readers > 0 {
		if !closed && c.ctx.Done() {
			// The final response is upstream and every branch has its own:
			// nothing more is the proxy's to decide. A 2xx retransmission
			// goes upstream from the edge, statelessly (RFC 6026 §7.2), so
			// the streams need not be read until Timer M. A branch whose
			// final the edge made up (Timer C, a CANCEL unanswered) is read
			// on: the callee's 2xx may still cross it, and must go up.
			closed = true
			for i, tx := range c.txs {
				if tx != nil && !made[i] {
					tx.Close()
				}
			}
		}
		var groupTimeout <-chan time.Time
		if c.group != nil {
			groupTimeout = c.group.Chan()
		}
		select {
		case <-groupTimeout:
			c.group = nil
			c.apply(c.ctx.GroupTimeout())
		case <-c.cancelled:
			c.apply(c.ctx.Cancel())
			c.cancelled = nil
		case ev := <-c.events:
			if ev.ended {
				c.readers--
				if !finals[ev.branch] {
					// No final at all (the edge gave none): as a 408 made here (§16.9).
					finals[ev.branch] = true
					made := sip.NewResponseFromRequest(c.r.Request, 408, "Request Timeout", nil)
					c.apply(c.ctx.Response(ev.branch, made, true))
				}
				continue
			}
			if ev.res.StatusCode >= 200 && !finals[ev.branch] {
				finals[ev.branch] = true
				made[ev.branch] = ev.res.Synthesized != ""
			}
			if ev.res.Synthesized == wire.ErrTimerC {
				c.p.timerC.Inc()
			}
			c.apply(c.ctx.Response(ev.branch, ev.res.Response, ev.res.Synthesized != ""))
		}
	}
}

func (c *call) apply(effects []Effect) {
	for _, e := range effects {
		switch {
		case e.Start != nil:
			// RFC 5393 §5.3.2: the branches that ring at once share the
			// breadth, each at least 1; targets beyond it are not tried (a
			// 440 made here, which never outranks a real response).
			n := len(e.Start)
			for i, t := range e.Start {
				if n > 1 && i >= c.breadth {
					c.txs, c.tried = append(c.txs, nil), append(c.tried, t.URI)
					c.failWith(len(c.txs)-1, 440, "Max-Breadth Exceeded")
					continue
				}
				share := c.breadth
				if k := min(n, c.breadth); n > 1 {
					share = c.breadth / k
					if i < c.breadth%k {
						share++
					}
				}
				c.start(t, share)
			}
			// A group with another after it may ring only so long (--fork-group-timeout).
			if c.group != nil {
				c.group.Stop()
				c.group = nil
			}
			if c.p.cfg.GroupTimeout > 0 && c.ctx.MoreGroups() {
				c.group = c.p.clock.NewTimer(c.p.cfg.GroupTimeout)
			}
		case e.Forward != nil && e.More:
			if err := c.r.RespondMore(e.Forward); err != nil {
				c.p.log.Warn("relay failed", "code", e.Forward.StatusCode, "error", err)
			}
			c.routed(e)
		case e.Forward != nil:
			c.p.relay(c.r, e.Forward)
			c.routed(e)
		case e.End:
			if err := c.r.End(); err != nil {
				c.p.log.Warn("end of 2xx not sent", "error", err)
			}
		case e.Cancel != nil:
			for _, id := range e.Cancel {
				if id < len(c.txs) && c.txs[id] != nil {
					ctx, cancel := c.p.ctx()
					if err := c.txs[id].Cancel(ctx, ""); err != nil {
						c.p.log.Info("branch not cancelled", "branch", id, "error", err)
					}
					cancel()
				}
			}
		}
	}
}

// routed announces the first final response upstream of a request forwarded
// to bindings (call.routed).
func (c *call) routed(e Effect) {
	if c.announced || c.bindings == nil || e.Forward.StatusCode < 200 {
		return
	}
	c.announced = true
	ev := wire.RouteEvent{Method: string(c.r.Method), CallID: c.r.CallID().Value(), From: c.r.From().Address.String(),
		Target: c.target, Tried: c.tried, Code: e.Forward.StatusCode}
	if e.Branch < len(c.tried) {
		ev.Contact = c.tried[e.Branch]
	}
	c.p.announce(ev)
}

// start forwards the request to t as a new branch (§16.6): a copy with the
// target as Request-URI (unless t keeps it), Record-Route with the edge it
// came through, the binding's Path as Route; sent over the binding's own
// connection when it registered over one.
func (c *call) start(t Target, breadth int) {
	id := len(c.txs)
	c.tried = append(c.tried, t.URI)
	req := c.r.Request.Clone()
	sipmsg.ReplaceHeaders(req, "Max-Breadth", strconv.Itoa(breadth))
	via := uac.Via{Dest: t.Dest}
	if t.URI != "" {
		var u sip.Uri
		if err := sip.ParseUri(t.URI, &u); err != nil {
			c.txs = append(c.txs, nil)
			c.fail(id, 400)
			return
		}
		req.Recipient = u
		if b, ok := c.bindings[t.URI]; ok {
			for i := len(b.Path) - 1; i >= 0; i-- {
				req.PrependHeader(sip.NewHeader("Route", b.Path[i]))
			}
			// A connection the UA opened (TCP, TLS, WS), or an RFC 5626 flow,
			// is the only way to it; over plain UDP its Contact is.
			if b.Flow != "" && (!strings.EqualFold(b.Transport, "udp") || b.RegID != 0) {
				via = uac.Via{Edge: b.Edge, Flow: b.Flow}
			}
		}
	}
	if req.IsInvite() || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER {
		// Stay in the path of the dialog (§16.6 step 4) at the edge it came
		// through. When the branch leaves over another transport, the
		// callee's side gets an entry of its own on top (RFC 5658 §4,
		// doubled Record-Route): each side then reaches the edge over its
		// own transport. UDP and TCP share the edge's address (one bind by
		// default); TLS has its own port, which the edge names only for the
		// transport a request came over, so a TLS side is not doubled.
		in, out := strings.ToLower(c.r.Transport), outTransport(req, via)
		req.PrependHeader(sip.NewHeader("Record-Route", recordRoute(c.r.Reachable(), in)))
		if in != out && in != "tls" && out != "tls" {
			req.PrependHeader(sip.NewHeader("Record-Route", recordRoute(c.r.Reachable(), out)))
		}
	}
	if via.Edge == "" {
		// Out through the edge it came in: the caller's and the callee's
		// side then share one edge, its Record-Route and its 2xx path.
		via.Edge = c.r.Edge
	}
	via.Upstream = c.r.Edge
	if c.r.Flow != "" {
		via.Upstream += " " + c.r.Flow
	}
	via.Branch = sipmsg.Branch(c.loopKey, c.p.ids)
	c.p.log.Debug("forwarding", "branch", id, "ruri", req.Recipient.String(), "flow", via.Flow)
	tx, err := c.p.send.Send(req, via)
	c.txs = append(c.txs, tx)
	if err != nil {
		c.fail(id, 503)
		return
	}
	c.p.forwarded.WithLabelValues(string(req.Method)).Inc()
	c.readers++
	go func() {
		for {
			res, err := tx.Next(context.Background())
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, bus.ErrClosed) {
					c.p.log.Info("branch stream", "branch", id, "error", err)
				}
				c.events <- event{branch: id, ended: true}
				return
			}
			c.events <- event{branch: id, res: res}
		}
	}()
}

// fail ends branch id at once with a response made here.
func (c *call) fail(id, code int) { c.failWith(id, code, "Branch Failed") }

func (c *call) failWith(id, code int, reason string) {
	made := sip.NewResponseFromRequest(c.r.Request, code, reason, nil)
	c.apply(c.ctx.Response(id, made, true))
}

// recordRoute is the Record-Route entry for the edge at addr over transport.
func recordRoute(addr, transport string) string {
	rr := "<sip:" + addr + ";lr"
	if transport != "" && transport != "udp" {
		rr += ";transport=" + transport
	}
	return rr + ">"
}

// outTransport is the transport a branch leaves over: its flow's, or its
// next hop's URI's (RFC 3263 §4.1: the transport parameter, TLS for sips,
// else UDP), as the edge will choose it.
func outTransport(req *sip.Request, via uac.Via) string {
	if tp, _, ok := strings.Cut(via.Dest, ":"); ok {
		return strings.ToLower(tp)
	}
	if via.Flow != "" {
		if tp, _, ok := wire.SplitFlow(via.Flow); ok {
			return strings.ToLower(tp)
		}
	}
	next := req.Recipient
	if r := req.Route(); r != nil {
		next = r.Address
	}
	if tp, ok := next.UriParams.Get("transport"); ok && tp != "" {
		return strings.ToLower(tp)
	}
	if strings.EqualFold(next.Scheme, "sips") {
		return "tls"
	}
	return "udp"
}

// ack forwards an ACK for a 2xx along its Route set, statelessly (§16.11 and
// RFC 6026: the 2xx's ACK is a request of its own).
func (p *Proxy) ack(r *sipbus.Request) {
	if !r.To().Params.Has("tag") || !sipmsg.TakeHop(r.Request) {
		return // an ACK for a non-2xx stays at the edge, hop by hop
	}
	p.popRoutes(r)
	if err := p.send.Post(r.Request, uac.Via{}); err != nil {
		p.log.Info("ACK not forwarded", "call_id", r.CallID().Value(), "error", err)
		return
	}
	p.forwarded.WithLabelValues("ACK").Inc()
}
