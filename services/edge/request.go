package edge

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// retryAfter is what the edge tells clients when no replica of a role runs: a
// restarting role is usually back within seconds.
const retryAfter = "5"

// serve handles every request sipgo's transaction layer passes up.
func (e *Edge) serve(req *sip.Request, tx sip.ServerTransaction) {
	method := string(req.Method)
	if v := checkParsed(req); v.code != 0 {
		if !req.IsAck() {
			e.reply(req, tx, v.code, v.reason, v.detail)
		}
		return
	}
	r, routed := e.routes[method]
	switch {
	case req.IsAck():
		// An ACK is never answered; one for a 2xx goes to the role that sent the 2xx.
		e.acked(req)
		if routed {
			r.requests.Inc()
			e.forwardAck(req, r)
		}
	case req.IsCancel():
		// The edge and sipgo answered every CANCEL that matched an INVITE here.
		e.metrics.Requests.WithLabelValues(mode.RoleEdge, methodLabel(method)).Inc()
		e.reply(req, tx, 481, "Call/Transaction Does Not Exist", "")
	case !routed:
		e.metrics.Requests.WithLabelValues(mode.RoleEdge, methodLabel(method)).Inc()
		e.reply(req, tx, 405, "Method Not Allowed", "", sip.NewHeader("Allow", e.mode.Allow()))
	default:
		r = r.to(req)
		r.requests.Inc()
		if (req.Method == sip.REGISTER || req.Method == sip.INVITE) && e.overUserLimit(req) {
			e.reply(req, tx, 503, "Service Unavailable", "too many requests from this user (--user-rate-limit)",
				sip.NewHeader("Retry-After", "1"))
			return
		}
		if most := int64(e.cfg.MaxTransactions); most > 0 {
			if e.transactions.Add(1) > most {
				e.transactions.Add(-1)
				e.reply(req, tx, 503, "Service Unavailable", "too many transactions in progress (--max-transactions)",
					sip.NewHeader("Retry-After", retryAfter))
				return
			}
			defer e.transactions.Add(-1)
		}
		if e.replay != nil && replayable(req.Transport(), method) {
			if key := parsedReplayKey(req); key != "" {
				e.replay.pending(key)
			}
		}
		e.relay(req, tx, r)
	}
}

// respond sends res on tx. A final response to a non-INVITE over UDP goes to the
// replay cache and ends the transaction at once: the cache absorbs the
// retransmissions Timer J is for. It is cached before it is sent: a client
// that retransmits the moment the answer arrives must find it, not a request
// still pending (which is absorbed unanswered). Such a response is written
// from the edge's socket as raw (the role's own bytes, which the edge forwards
// unchanged) rather than through sipgo's transaction, which would serialise it
// a second time (6 % of the CPU of an embedded registrar, docs/benchmarks.md).
func (e *Edge) respond(req *sip.Request, tx sip.ServerTransaction, res *sip.Response, raw []byte) error {
	if res.StatusCode >= 200 && e.replay != nil && replayable(req.Transport(), string(req.Method)) {
		if key := parsedReplayKey(req); key != "" {
			if raw == nil {
				raw = []byte(res.String())
			}
			e.replay.complete(key, raw)
			defer tx.Terminate()
			to, err := netip.ParseAddrPort(req.Source())
			if conn := e.udpConn(); conn != nil && err == nil {
				_, err = conn.WriteTo(raw, net.UDPAddrFromAddrPort(to))
				return err
			}
		}
	}
	return tx.Respond(res)
}

// relay hands req to its role and relays every response back until a final one.
func (e *Edge) relay(req *sip.Request, tx sip.ServerTransaction, r *route) {
	start := time.Now()
	var inv *inviteRelay
	var cancelled <-chan *sip.Request // nil unless INVITE: never ready
	h := e.busHeader(req)
	if req.IsInvite() {
		inv = e.trackInvite(req, tx)
		cancelled = inv.cancelled
		h[wire.HdrTx] = []string{inv.key}
	}
	st, err := e.streamer.Open(r.subject, h, []byte(req.String()))
	if err != nil {
		e.log.Warn("publish to role failed", "to", r.role, "error", err)
		e.reply(req, tx, 503, "Service Unavailable", "bus unavailable", sip.NewHeader("Retry-After", retryAfter))
		return
	}
	defer st.Close()
	wait := e.clock.NewTimer(e.cfg.RoleTimeout)
	defer wait.Stop()
	var cancel *sip.Request      // the caller's CANCEL, until the replica holding the INVITE is known
	var holderGone chan struct{} // closed when the replica holding the INVITE is gone
	for {
		select {
		case <-holderGone:
			e.log.Warn("the role replica holding a ringing INVITE is gone", "to", r.role, "replica", inv.holder())
			if inv.wasCancelled() {
				e.terminated(req, tx, inv) // the caller asked for the end anyway
				return
			}
			e.reply(req, tx, 500, "Server Internal Error", "the "+r.role+" replica holding this call is gone")
			return
		case c := <-cancelled:
			cancelled = nil
			if cancelFromSipgo(tx) {
				// sipgo answered 200 and 487 itself: the role only needs to know.
				if replica := inv.holder(); replica != "" {
					e.forwardCancel(r.role, replica, inv, c)
					return
				}
				cancel = c
				continue
			}
			if replica := inv.holder(); replica != "" {
				e.forwardCancel(r.role, replica, inv, c)
			} else {
				cancel = c // the role's first response names the replica
			}
			// The role answers 487 (or the 2xx that crossed the CANCEL); one
			// that does not within --role-timeout gets it sent for it.
			wait.Reset(e.cfg.RoleTimeout)
		case m := <-st.C():
			if bus.IsNoResponders(m) {
				e.reply(req, tx, 503, "Service Unavailable", "no "+r.role+" role is running",
					sip.NewHeader("Retry-After", retryAfter))
				return
			}
			if inv != nil {
				if id := m.Header.Get(wire.HdrReplica); id != "" && inv.holder() == "" {
					inv.heldBy(id)
					holderGone = make(chan struct{})
					subject := wire.Replica(r.role, id)
					gone := holderGone
					defer e.prober.watch(subject, subject, inv, func() { close(gone) })()
				}
				if cancel != nil && inv.holder() != "" {
					e.forwardCancel(r.role, inv.holder(), inv, cancel)
					cancel = nil
					if cancelFromSipgo(tx) {
						return
					}
				}
			}
			if m.Header.Get(wire.HdrServiceErrorCode) == wire.RefuseBadMessage {
				// The role could not parse what the edge let through.
				e.reply(req, tx, 400, "Bad Request", m.Header.Get(wire.HdrServiceError))
				return
			}
			res, err := roleResponse(m.Data, req)
			if err != nil {
				e.log.Error("role sent an unusable response", "to", r.role, "error", err)
				e.reply(req, tx, 500, "Server Internal Error", "role "+r.role+" sent an unusable response")
				return
			}
			if inv != nil && res.StatusCode > 100 && res.StatusCode < 200 {
				inv.provisionalTag(res)
			}
			var ackKey string
			var ack chan struct{}
			if inv != nil && res.IsSuccess() {
				ackKey, ack = e.expectACK(req, res)
			}
			if err := e.respond(req, tx, res, m.Data); err != nil {
				e.log.Warn("respond failed", "method", req.Method, "code", res.StatusCode, "error", err)
				if ack != nil {
					e.acks.drop(ackKey, ack)
				}
				return
			}
			e.countResponse(req.Method, res.StatusCode)
			if res.StatusCode >= 200 {
				r.roundTrip.Observe(time.Since(start).Seconds())
				if ack != nil {
					var more <-chan *nats.Msg // other forks' 2xx may follow (wire.HdrMore)
					if m.Header.Get(wire.HdrMore) != "" {
						more = st.C()
					}
					e.acceptedInvite(req, tx, res, ackKey, ack, more)
				}
				return
			}
			if inv != nil && inv.wasCancelled() {
				continue // the clock set by the CANCEL runs on
			}
			if req.IsInvite() {
				wait.Reset(e.cfg.TimerC)
			} else {
				wait.Reset(e.cfg.RoleTimeout)
			}
		case <-wait.Chan():
			if inv != nil && inv.wasCancelled() {
				e.log.Warn("role did not answer a CANCEL: sending 487 for it", "to", r.role)
				e.terminated(req, tx, inv)
				return
			}
			e.log.Warn("role did not answer", "to", r.role, "method", req.Method)
			e.reply(req, tx, 408, "Request Timeout", "role "+r.role+" did not answer in time")
			return
		case <-tx.Done():
			return // the transport failed: nothing more can be sent
		}
	}
}

// forwardAck passes an ACK to its role; ACKs get no response.
func (e *Edge) forwardAck(req *sip.Request, r *route) {
	err := e.nc.PublishMsg(&nats.Msg{Subject: r.subject, Header: e.busHeader(req), Data: []byte(req.String())})
	if err != nil {
		e.log.Warn("forward ACK failed", "to", r.role, "error", err)
	}
}

// busHeader is the transport facts of req for the role.
func (e *Edge) busHeader(req *sip.Request) nats.Header {
	transport := strings.ToLower(req.Transport())
	// Keys are set directly: they are already in canonical form.
	h := nats.Header{
		wire.HdrEdge:      {e.cfg.ID},
		wire.HdrTransport: {transport},
		wire.HdrRemote:    {req.Source()},
		wire.HdrLocal:     {e.Addr(transport)},
		wire.HdrMode:      {e.mode.Name},
	}
	if transport != UDP {
		h[wire.HdrFlow] = []string{wire.Flow(transport, req.Source())}
	}
	adv := e.cfg.Advertise
	if transport == TLS {
		adv = e.cfg.AdvertiseTLS
	}
	if adv != "" {
		h[wire.HdrAdvertise] = []string{adv}
	}
	return h
}

// responseParser reads what roles send back. The edge forwards a role's
// response as it is, so it parses only what sipgo's server transaction reads
// (status line, CSeq, the body's length); every other header stays a raw line,
// written back unchanged. Parsing Via and addresses here would cost a fifth of
// the edge's CPU for nothing.
var responseParser = sip.NewParser(sip.WithHeadersParsers(sip.HeadersParser{
	"cseq":           sip.DefaultHeadersParser()["cseq"],
	"content-length": sip.DefaultHeadersParser()["content-length"],
	"l":              sip.DefaultHeadersParser()["l"],
}))

// roleResponse parses a role's response and addresses it like the request came.
func roleResponse(data []byte, req *sip.Request) (*sip.Response, error) {
	msg, err := responseParser.ParseSIP(data)
	if err != nil {
		return nil, err
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		return nil, fmt.Errorf("got a request, want a response")
	}
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res, nil
}

// reply answers req with a response the edge makes itself.
func (e *Edge) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason, detail string, hdrs ...sip.Header) {
	res := sipmsg.NewResponse(req, code, reason, nil, e.ids)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if detail != "" {
		res.AppendHeader(sipmsg.Warning(e.cfg.ID, detail))
	}
	res.AppendHeader(sip.NewHeader("Server", e.userAgent))
	if err := e.respond(req, tx, res, nil); err != nil {
		e.log.Warn("respond failed", "method", req.Method, "code", code, "error", err)
		return
	}
	e.countResponse(req.Method, code)
}

func (e *Edge) countResponse(method sip.RequestMethod, code int) {
	e.metrics.Responses.WithLabelValues(mode.RoleEdge, methodLabel(string(method)), obs.Code(code)).Inc()
}
