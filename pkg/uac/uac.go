// Package uac is the UAC side of the bus contract, shared by every role that
// sends SIP requests: it sends a request through an edge's send path and reads
// back the stream of its responses, cancels an INVITE branch at the edge that
// holds it, sends ACKs and responses statelessly, and builds requests inside a
// dialog (dialog.go) on sipgo's types.
package uac

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// statelessTimeout bounds the edge's acknowledgement of a stateless send.
const statelessTimeout = 5 * time.Second

// ErrNoEdge means no edge listens on the subject: none runs, or not the one named.
var ErrNoEdge = errors.New("uac: no edge is running")

// Via says which edge sends a message and where to.
type Via struct {
	// Edge and Flow: over the connection (flow) that edge owns, as a UA behind
	// NAT is reached only over the connection it opened.
	Edge, Flow string
	// Dest, as transport:host:port, overrides the SIP rules (Route, then
	// Request-URI) for where the message goes.
	Dest string
	// Branch, when set, is the branch of the edge's Via on the request (a
	// forwarding role's, for loop detection); the edge makes one otherwise.
	Branch string
	// Upstream is a forwarded request's way back: the edge (and flow) it came
	// in through, where its branch's later 2xx go (wire.HdrUpstream).
	Upstream string
}

func (v Via) subject() string {
	if v.Edge != "" {
		return wire.EdgeSend(v.Edge)
	}
	return wire.EdgeSendAny
}

func (v Via) header() nats.Header {
	h := nats.Header{}
	if v.Flow != "" {
		h[wire.HdrFlow] = []string{v.Flow}
	}
	if v.Dest != "" {
		h[wire.HdrDest] = []string{v.Dest}
	}
	if v.Branch != "" {
		h[wire.HdrBranch] = []string{v.Branch}
	}
	if v.Upstream != "" {
		h[wire.HdrUpstream] = []string{v.Upstream}
	}
	return h
}

// Response is one response from the send path.
type Response struct {
	*sip.Response
	// Edge and Branch name the client transaction it belongs to.
	Edge, Branch string
	// Synthesized is a wire.Err* code when the edge made the response up (a
	// timeout, Timer C, a transport failure), "" when it came from the network.
	Synthesized string
}

// Client sends through the edges of one NATS connection.
type Client struct {
	nc       *nats.Conn
	streamer *bus.Streamer
}

// New makes a client on nc, with its own reply inbox.
func New(nc *nats.Conn) (*Client, error) {
	st, err := bus.NewStreamer(nc)
	if err != nil {
		return nil, fmt.Errorf("uac: %w", err)
	}
	return &Client{nc: nc, streamer: st}, nil
}

// Close stops receiving responses.
func (c *Client) Close() error { return c.streamer.Close() }

// Tx is one request in flight and the stream of its responses. One goroutine
// reads it (Next); Cancel and Branch may be called from any.
type Tx struct {
	c      *Client
	st     *bus.Stream
	invite bool
	ended  bool

	mu     sync.Mutex
	edge   string
	branch string
	named  chan struct{} // closed once the edge has named the branch
}

// Send hands req to an edge, which runs its client transaction; read the
// responses with Next, and Close the Tx when done with it.
func (c *Client) Send(req *sip.Request, via Via) (*Tx, error) {
	st, err := c.streamer.Open(via.subject(), via.header(), marshal(req))
	if err != nil {
		return nil, fmt.Errorf("uac: send %s: %w", req.Method, err)
	}
	return &Tx{c: c, st: st, invite: req.IsInvite(), named: make(chan struct{})}, nil
}

// Next returns the next response. It returns io.EOF once the stream has ended:
// after a non-INVITE's final response, or when the edge says an INVITE's
// transaction is over (no further 2xx can come).
func (t *Tx) Next(ctx context.Context) (Response, error) {
	for {
		if t.ended {
			return Response{}, io.EOF
		}
		m, err := t.st.Next(ctx)
		if errors.Is(err, bus.ErrNoResponders) {
			return Response{}, ErrNoEdge
		}
		if err != nil {
			return Response{}, fmt.Errorf("uac: %w", err)
		}
		if e := m.Header.Get(wire.HdrServiceError); e != "" {
			t.ended = true
			return Response{}, fmt.Errorf("uac: the edge refused the request (%s): %s", m.Header.Get(wire.HdrServiceErrorCode), e)
		}
		if b := m.Header.Get(wire.HdrBranch); b != "" {
			t.mu.Lock()
			if t.branch == "" {
				close(t.named)
			}
			t.edge, t.branch = m.Header.Get(wire.HdrEdge), b
			t.mu.Unlock()
		}
		if m.Header.Get(wire.HdrEnd) != "" {
			t.ended = true
			return Response{}, io.EOF
		}
		if len(m.Data) == 0 {
			continue // the branch notice an INVITE stream starts with
		}
		msg, err := sip.ParseMessage(m.Data)
		if err != nil {
			return Response{}, fmt.Errorf("uac: unparseable response from the edge: %w", err)
		}
		res, ok := msg.(*sip.Response)
		if !ok {
			return Response{}, errors.New("uac: the edge relayed a request as a response")
		}
		if !t.invite && res.StatusCode >= 200 {
			t.ended = true
		}
		edge, branch := t.Branch()
		return Response{Response: res, Edge: edge, Branch: branch, Synthesized: m.Header.Get(wire.HdrError)}, nil
	}
}

// Cancel asks the edge holding this INVITE's branch to CANCEL it (RFC 3261
// §9.1); reason, when set, is the CANCEL's Reason header (RFC 3326). The 487
// (or the final response that crossed the CANCEL) still comes through Next.
func (t *Tx) Cancel(ctx context.Context, reason string) error {
	// The edge names the branch in the first message of an INVITE's stream;
	// a cancel that comes sooner waits for it (another goroutine reads the
	// stream).
	select {
	case <-t.named:
	case <-ctx.Done():
		return fmt.Errorf("uac: cancel before the edge named the branch: %w", ctx.Err())
	}
	edge, branch := t.Branch()
	h := nats.Header{wire.HdrBranch: {branch}}
	if reason != "" {
		h[wire.HdrReason] = []string{reason}
	}
	return t.c.request(ctx, &nats.Msg{Subject: wire.EdgeCancel(edge), Header: h})
}

// Branch is the edge and branch of the transaction, once the edge has named them.
func (t *Tx) Branch() (edge, branch string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.edge, t.branch
}

// Close stops reading; responses still coming are dropped.
func (t *Tx) Close() { t.st.Close() }

// Do sends a non-INVITE request and returns its final response; provisional
// ones go to onProvisional when given.
func (c *Client) Do(ctx context.Context, req *sip.Request, via Via, onProvisional func(Response)) (Response, error) {
	tx, err := c.Send(req, via)
	if err != nil {
		return Response{}, err
	}
	defer tx.Close()
	return tx.final(ctx, onProvisional)
}

func (t *Tx) final(ctx context.Context, onProvisional func(Response)) (Response, error) {
	for {
		res, err := t.Next(ctx)
		if errors.Is(err, io.EOF) {
			return Response{}, errors.New("uac: the stream ended without a final response")
		}
		if err != nil {
			return Response{}, err
		}
		if res.StatusCode >= 200 {
			return res, nil
		}
		if onProvisional != nil {
			onProvisional(res)
		}
	}
}

// Invite sends an INVITE and returns its first final response. Every 2xx is
// acknowledged with the ACK ack builds for it (RFC 3261 §13.2.2.4): the first
// before Invite returns, and after it, until the transaction ends, each
// retransmission (the peer did not get the ACK). A 2xx of a dialog the caller
// was not given — another fork's, or one that crossed the CANCEL after ctx
// ended or after the edge gave up on the branch (Timer C) — is ACKed and then
// ended with BYE, as §13.2.2.4 asks of a UAC that does not want it.
func (c *Client) Invite(ctx context.Context, req *sip.Request, via Via, ack func(*sip.Response) (*sip.Request, error), onProvisional func(Response)) (Response, error) {
	tx, err := c.Send(req, via)
	if err != nil {
		return Response{}, err
	}
	res, err := tx.final(ctx, onProvisional)
	if err != nil && ctx.Err() != nil {
		// The caller stopped waiting: CANCEL the branch, and end whatever
		// 2xx still crosses it.
		go c.settle(tx, via, ack, "")
		cctx, cancel := context.WithTimeout(context.Background(), statelessTimeout)
		defer cancel()
		_ = tx.Cancel(cctx, "")
		return Response{}, err
	}
	if err != nil {
		tx.Close()
		return res, err
	}
	switch {
	case res.IsSuccess():
		tag, _ := res.To().Params.Get("tag")
		c.acknowledge(res, via, ack, false)
		go c.settle(tx, via, ack, tag)
	case res.Synthesized != "":
		go c.settle(tx, via, ack, "") // a 2xx may still come from the far end
	default:
		tx.Close()
	}
	return res, nil
}

// settle reads tx until the edge ends it (Timer M): a 2xx of the dialog with
// tag kept (kept != "") is ACKed again; any other 2xx is ACKed and ended.
func (c *Client) settle(tx *Tx, via Via, ack func(*sip.Response) (*sip.Request, error), kept string) {
	defer tx.Close()
	// Bounded: the edge ends the stream after Timer M (64·T1) at the latest.
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1+sip.Timer_B+statelessTimeout)
	defer cancel()
	for {
		res, err := tx.Next(ctx)
		if err != nil {
			return
		}
		if !res.IsSuccess() {
			continue
		}
		tag, _ := res.To().Params.Get("tag")
		c.acknowledge(res, via, ack, kept == "" || tag != kept)
	}
}

// acknowledge ACKs a 2xx where it came in, and with hangUp ends its dialog.
func (c *Client) acknowledge(res Response, via Via, ack func(*sip.Response) (*sip.Request, error), hangUp bool) {
	ctx, cancel := context.WithTimeout(context.Background(), statelessTimeout)
	defer cancel()
	via.Edge = res.Edge // the ACK goes out where the 2xx came in
	via.Branch = ""     // the ACK and the BYE are transactions of their own
	a, err := ack(res.Response)
	if err != nil {
		return
	}
	if err := c.Stateless(ctx, a, via); err != nil || !hangUp {
		return // a lost ACK is repaired by the peer's next retransmission
	}
	// The BYE of a dialog is its ACK's request line, route and tags with the
	// next CSeq (§15.1.1).
	bye := a.Clone()
	bye.Method = sip.BYE
	if cs := bye.CSeq(); cs != nil {
		cs.SeqNo++
		cs.MethodName = sip.BYE
	}
	byeCtx, byeCancel := context.WithTimeout(context.Background(), sip.Timer_F+statelessTimeout)
	defer byeCancel()
	_, _ = c.Do(byeCtx, bye, via, nil)
}

// Stateless has an edge send an ACK or a response as it is, and waits for the
// edge to say it was written.
func (c *Client) Stateless(ctx context.Context, msg sip.Message, via Via) error {
	m := &nats.Msg{Subject: via.subject(), Header: via.header(), Data: marshal(msg)}
	return c.request(ctx, m)
}

// Post sends msg statelessly without waiting for the edge's word: for the
// ACK of a 2xx a proxy forwards, which nobody answers and whose loss the
// caller repairs (it ACKs the 2xx retransmission again). It saves the
// round trip Stateless makes on every call.
func (c *Client) Post(msg sip.Message, via Via) error {
	if err := c.nc.PublishMsg(&nats.Msg{Subject: via.subject(), Header: via.header(), Data: marshal(msg)}); err != nil {
		return fmt.Errorf("uac: %s: %w", via.subject(), err)
	}
	return nil
}

func (c *Client) request(ctx context.Context, m *nats.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, statelessTimeout)
	defer cancel()
	reply, err := c.nc.RequestMsgWithContext(ctx, m)
	if errors.Is(err, nats.ErrNoResponders) {
		return ErrNoEdge
	}
	if err != nil {
		return fmt.Errorf("uac: %s: %w", m.Subject, err)
	}
	if e := reply.Header.Get(wire.HdrServiceError); e != "" {
		return fmt.Errorf("uac: the edge refused (%s): %s", reply.Header.Get(wire.HdrServiceErrorCode), e)
	}
	return nil
}

func marshal(m sip.Message) []byte {
	var b bytes.Buffer
	m.StringWrite(&b)
	return b.Bytes()
}
