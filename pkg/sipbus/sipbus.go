// Package sipbus is the role side of the bus contract: a role registers one
// handler per SIP method, receives each request as a parsed sip.Request with its
// transport facts, and answers with as many responses as it likes; a final
// response ends the exchange at the edge.
package sipbus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// Request is one SIP request from an edge.
type Request struct {
	*sip.Request
	// Edge is the id of the edge that received it.
	Edge string
	// Transport, Remote and Local describe how it arrived.
	Transport, Remote, Local string
	// Advertised is the edge's address as UAs reach it (--advertise), or "".
	Advertised string
	// Flow names the connection it came over (stream transports), else "".
	Flow string
	// Mode is the siphond mode of the edge that received it.
	Mode string
	// Tx is the edge's server transaction key of an INVITE: the CANCEL for it
	// names the same (wire.HdrTx).
	Tx string

	reply     responder
	responses *prometheus.CounterVec
	role      string
	replyOpts []micro.RespondOpt
	replica   string
}

// responder is the part of micro.Request a Request answers through; tests use a Recorder.
type responder interface {
	Respond(data []byte, opts ...micro.RespondOpt) error
}

// Respond sends a response back through the edge. Call it once per response;
// a final response (>= 200) must be the last.
func (r *Request) Respond(res *sip.Response) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	// NATS copies the payload before Respond returns, so the buffer is reusable.
	if err := r.reply.Respond(buf.Bytes(), r.replyOpts...); err != nil {
		return fmt.Errorf("sipbus: respond %d to %s: %w", res.StatusCode, r.Method, err)
	}
	r.responses.WithLabelValues(r.role, string(r.Method), obs.Code(res.StatusCode)).Inc()
	return nil
}

// RespondMore sends a 2xx to an INVITE after which more 2xx may follow (a
// forking proxy's other branches, wire.HdrMore); End closes them.
func (r *Request) RespondMore(res *sip.Response) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	res.StringWrite(buf)
	if err := r.reply.Respond(buf.Bytes(), r.headers(wire.HdrMore)); err != nil {
		return fmt.Errorf("sipbus: respond %d to %s: %w", res.StatusCode, r.Method, err)
	}
	r.responses.WithLabelValues(r.role, string(r.Method), obs.Code(res.StatusCode)).Inc()
	return nil
}

// End tells the edge that no more 2xx follow those RespondMore sent.
func (r *Request) End() error {
	if err := r.reply.Respond(nil, r.headers(wire.HdrEnd)); err != nil {
		return fmt.Errorf("sipbus: end %s: %w", r.Method, err)
	}
	return nil
}

// headers are the reply headers with flag set (micro takes one header set per reply).
func (r *Request) headers(flag string) micro.RespondOpt {
	h := micro.Headers{flag: {"1"}}
	if r.replica != "" {
		h[wire.HdrReplica] = []string{r.replica}
	}
	return micro.WithHeaders(h)
}

// Reachable is the edge's address as the sender reached it, host:port, for a
// Contact, a Record-Route or SDP: the edge's --advertise; else its own
// (Local), or, when the edge listens on every interface, the host the request
// was addressed to with the edge's port.
func (r *Request) Reachable() string {
	if r.Advertised != "" {
		return r.Advertised
	}
	host, port, err := net.SplitHostPort(r.Local)
	if err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return r.Local
		}
	}
	h := r.Recipient.Host
	if p := r.Recipient.Port; p != 0 {
		return net.JoinHostPort(h, strconv.Itoa(p))
	}
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	return h
}

// NewResponse builds a response to r per RFC 3261 §8.2.6, as sipgo does, with
// the Via received/rport filled from the real source address.
func (r *Request) NewResponse(code int, reason string, body []byte) *sip.Response {
	return sip.NewResponseFromRequest(r.Request, code, reason, body)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Handler serves one method.
type Handler func(*Request)

// Service runs a role's handlers on the bus.
type Service struct {
	svc      micro.Service
	inFlight sync.WaitGroup
}

// Stop removes the role from the bus, then waits until the requests already
// taken are answered or ctx ends. The workers stay: a subscription callback may
// still be handing one a request as the subscription drains, and the process
// is about to end anyway.
func (s *Service) Stop(ctx context.Context) error {
	err := s.svc.Stop()
	done := make(chan struct{})
	go func() { s.inFlight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("sipbus: %s stopped with requests in flight: %w", s.svc.Info().Name, ctx.Err())
	}
	return err
}

// Options tune how a role runs its handlers.
type Options struct {
	// Workers is how many requests run at once, on a pool of long-lived
	// goroutines; for handlers that wait (on the store). 0 runs each handler on
	// the subscription's own goroutine: cheapest for handlers that never wait.
	Workers int
	// Replica, when set, is put on every response as Siphon-Replica, so the
	// edge can reach this replica again (a CANCEL for the INVITE it holds).
	Replica string
}

// Serve subscribes role to every method in handlers, in the role's queue group,
// as a micro service named after the role (so `nats micro ls` lists replicas).
func Serve(nc *nats.Conn, role string, handlers map[string]Handler, opts Options, m *obs.Metrics, log *slog.Logger) (*Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        role,
		Version:     wire.Version,
		Description: "siphon " + role + " role",
		QueueGroup:  wire.Queue(role),
	})
	if err != nil {
		return nil, fmt.Errorf("sipbus: add %s service: %w", role, err)
	}
	parser := sip.NewParser()
	// Handlers that wait on the store (a Redis round trip or two) cannot run
	// inline: one endpoint would serve one request at a time. A pool of
	// long-lived workers runs them instead: goroutines whose stacks have already
	// grown to what a handler needs, rather than a new one per request. When
	// every worker is busy the subscription waits, and NATS buffers: that is the
	// back-pressure.
	var work chan func()
	if opts.Workers > 0 {
		work = make(chan func(), opts.Workers)
		for range opts.Workers {
			go func() {
				for job := range work {
					job()
				}
			}()
		}
	}
	s := &Service{svc: svc}
	var replyOpts []micro.RespondOpt
	if opts.Replica != "" {
		replyOpts = append(replyOpts, micro.WithHeaders(micro.Headers{wire.HdrReplica: {opts.Replica}}))
	}
	for method, h := range handlers {
		requests := m.Requests.WithLabelValues(role, method)
		handle := func(mr micro.Request) {
			req, err := decode(parser, mr)
			if err != nil {
				// The edge parses only the headers it reads and checks the
				// grammar of the rest; what still slips past it is refused
				// here, and the edge answers 400 at once.
				log.Warn("undecodable request from edge", "error", err)
				_ = mr.Error(wire.RefuseBadMessage, undecodable(err), nil)
				return
			}
			requests.Inc()
			req.reply, req.responses, req.role, req.replyOpts, req.replica = mr, m.Responses, role, replyOpts, opts.Replica
			s.inFlight.Add(1)
			if work == nil {
				h(req)
				s.inFlight.Done()
				return
			}
			work <- func() { defer s.inFlight.Done(); h(req) }
		}
		err := svc.AddEndpoint(method, micro.HandlerFunc(handle), micro.WithEndpointSubject(wire.SIPRequest(role, method)))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("sipbus: add %s endpoint %s: %w", role, method, err)
		}
	}
	return s, nil
}

// undecodable is the one-line reason a role gives for a request it could
// not parse: a parser error can quote a whole header.
func undecodable(err error) string {
	const most = 120
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(msg) > most {
		cut := most
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut-- // not inside a character
		}
		msg = msg[:cut] + "…"
	}
	return "the request does not parse: " + msg
}

func decode(parser *sip.Parser, mr micro.Request) (*Request, error) {
	msg, err := parser.ParseSIP(mr.Data())
	if err != nil {
		return nil, err
	}
	sreq, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("got a response, want a request")
	}
	h := mr.Headers()
	req := &Request{
		Request:    sreq,
		Edge:       h.Get(wire.HdrEdge),
		Transport:  h.Get(wire.HdrTransport),
		Remote:     h.Get(wire.HdrRemote),
		Local:      h.Get(wire.HdrLocal),
		Advertised: h.Get(wire.HdrAdvertise),
		Flow:       h.Get(wire.HdrFlow),
		Mode:       h.Get(wire.HdrMode),
		Tx:         h.Get(wire.HdrTx),
	}
	if req.Transport != "" {
		sreq.SetTransport(req.Transport)
	}
	if _, _, err := net.SplitHostPort(req.Remote); err == nil {
		sreq.SetSource(req.Remote)
	}
	return req, nil
}
