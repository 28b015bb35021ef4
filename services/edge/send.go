package edge

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The send path (the contract is in pkg/wire): roles hand the edge complete SIP
// messages to send. A request other than ACK runs a client transaction here
// (branch.go) and every response it gets goes back to the asking role. ACKs
// and responses are sent statelessly and acknowledged with an empty reply (or
// a micro error). The cancel endpoint CANCELs an INVITE branch.

// startSend joins the bus as the edge micro service: this edge's own send and
// cancel subjects, and the shared send subject in the edges' queue group.
func (e *Edge) startSend() error {
	svc, err := micro.AddService(e.nc, micro.Config{
		Name:        wire.ServiceEdge,
		Version:     wire.Version,
		Description: "siphon SIP edge " + e.cfg.ID,
		QueueGroup:  wire.QueueEdge,
		Metadata:    map[string]string{wire.MetaEdgeID: e.cfg.ID, wire.MetaMode: e.mode.Name},
	})
	if err != nil {
		return fmt.Errorf("edge: add send service: %w", err)
	}
	e.sendSvc = svc
	handler := micro.HandlerFunc(e.handleSend)
	if err := svc.AddEndpoint(wire.EndpointSend, handler, micro.WithEndpointSubject(wire.EdgeSend(e.cfg.ID))); err != nil {
		return fmt.Errorf("edge: add send endpoint: %w", err)
	}
	if err := svc.AddEndpoint(wire.EndpointSendAny, handler, micro.WithEndpointSubject(wire.EdgeSendAny)); err != nil {
		return fmt.Errorf("edge: add send-any endpoint: %w", err)
	}
	cancel := micro.HandlerFunc(e.handleCancel)
	if err := svc.AddEndpoint(wire.EndpointCancel, cancel, micro.WithEndpointSubject(wire.EdgeCancel(e.cfg.ID))); err != nil {
		return fmt.Errorf("edge: add cancel endpoint: %w", err)
	}
	return nil
}

func (e *Edge) handleSend(mr micro.Request) {
	msg, err := sip.ParseMessage(mr.Data())
	if err != nil {
		sendError(mr, wire.RefuseBadMessage, "unparseable SIP message: "+err.Error())
		return
	}
	h := mr.Headers()
	switch m := msg.(type) {
	case *sip.Response:
		done(mr, e.sendResponse(m, h))
	case *sip.Request:
		if err := e.address(m, h); err != nil {
			sendError(mr, wire.RefuseBadMessage, err.Error())
			return
		}
		if m.IsAck() {
			done(mr, e.client.WriteRequest(m, noBuild))
			return
		}
		if m.IsCancel() {
			// A CANCEL must carry its INVITE's branch (§9.1), which only the
			// edge that holds it knows.
			sendError(mr, wire.RefuseBadMessage, "send no CANCEL: cancel the branch at "+wire.EdgeCancelT+" with "+wire.HdrBranch)
			return
		}
		// The transaction outlives this callback; micro's subscription must not wait for it.
		go e.sendRequest(m, mr.Reply(), h.Get(wire.HdrUpstream))
	}
}

// handleCancel cancels the INVITE branch the request names (RFC 3261 §9.1).
func (e *Edge) handleCancel(mr micro.Request) {
	id := mr.Headers().Get(wire.HdrBranch)
	b := e.branches.get(id)
	if b == nil || !b.invite || !b.cancel(cancelByRole, mr.Headers().Get(wire.HdrReason)) {
		sendError(mr, wire.RefuseNoBranch, "no INVITE branch "+id+" still ringing at edge "+e.cfg.ID)
		return
	}
	done(mr, nil)
}

// noBuild keeps sipgo from adding headers: roles send complete messages and the
// edge has added its Via.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// address sets where req goes and puts the edge's Via on top, so responses come
// back to this edge. Destination: Siphon-Dest, else the flow, else the SIP rules
// (Route, then Request-URI) as sipgo applies them.
func (e *Edge) address(req *sip.Request, h micro.Headers) error {
	transport, dest, err := destination(h)
	if err != nil {
		return err
	}
	if transport != "" {
		req.SetTransport(strings.ToUpper(transport))
		req.SetDestination(dest)
	} else {
		// The SIP rules (RFC 3263 §4.1): the next hop's URI — the first Route,
		// else the Request-URI — says the transport, not the Via a forwarded
		// request arrived with.
		req.SetTransport(uriTransport(req))
	}
	transport = strings.ToLower(req.Transport())
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Params: sip.NewParams(),
	}
	branch := e.ids.Branch()
	if b := h.Get(wire.HdrBranch); b != "" && !req.IsAck() {
		// A forwarding role derives its branch from the request, for loop
		// detection (RFC 3261 §16.6 step 8); it must be an RFC 3261 branch.
		if !strings.HasPrefix(b, ids.BranchCookie) || len(b) <= len(ids.BranchCookie) || strings.ContainsAny(b, " ;,\r\n") {
			return fmt.Errorf("%s %q: want an RFC 3261 branch (z9hG4bK...)", wire.HdrBranch, b)
		}
		if e.branches.get(b) != nil {
			return fmt.Errorf("%s %q: a branch of that name is in flight here", wire.HdrBranch, b)
		}
		branch = b
	}
	via.Params.Add("branch", branch)
	via.Params.Add("rport", "")
	if transport == UDP {
		// Send from the listening socket, so the peer sees the edge's SIP port.
		if local := e.Addr(UDP); local != "" {
			host, port, _ := net.SplitHostPort(local)
			ip := net.ParseIP(host)
			if ip == nil || ip.IsUnspecified() {
				ip = outboundIP(req.Destination())
			}
			p, _ := strconv.Atoi(port)
			req.Laddr = sip.Addr{IP: net.ParseIP(host), Port: p}
			if ip != nil {
				via.Host, via.Port = ip.String(), p
			}
		}
	}
	req.PrependHeader(via)
	return nil
}

// uriTransport is the transport of req's next hop: its URI's transport
// parameter, TLS for a sips URI, else UDP.
func uriTransport(req *sip.Request) string {
	next := req.Recipient
	if r := req.Route(); r != nil {
		next = r.Address
	}
	if tp, ok := next.UriParams.Get("transport"); ok && tp != "" {
		return strings.ToUpper(tp)
	}
	if strings.EqualFold(next.Scheme, "sips") {
		return "TLS"
	}
	return "UDP"
}

// destination reads Siphon-Dest or Siphon-Flow: ("", "", nil) when neither is set.
func destination(h micro.Headers) (transport, addr string, err error) {
	if d := h.Get(wire.HdrDest); d != "" {
		transport, addr, ok := strings.Cut(d, ":")
		if _, _, err := net.SplitHostPort(addr); !ok || err != nil {
			return "", "", fmt.Errorf("%s %q: want transport:host:port", wire.HdrDest, d)
		}
		return transport, addr, nil
	}
	if f := h.Get(wire.HdrFlow); f != "" {
		transport, remote, ok := wire.SplitFlow(f)
		if !ok {
			return "", "", fmt.Errorf("%s %q: want transport:host:port", wire.HdrFlow, f)
		}
		return transport, remote, nil
	}
	return "", "", nil
}

// outboundIP is the local address the OS would send to dest from, for a Via
// when the edge listens on every interface. No packet is sent.
func outboundIP(dest string) net.IP {
	c, err := net.Dial("udp", dest)
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP
}

// publishReply sends one message of a send-path stream to the asker.
func (e *Edge) publishReply(reply string, h nats.Header, data []byte) {
	if reply == "" {
		return
	}
	if err := e.nc.PublishMsg(&nats.Msg{Subject: reply, Header: h, Data: data}); err != nil {
		e.log.Warn("reply to sender failed", "error", err)
	}
}

// sendResponse sends a response statelessly: to Siphon-Dest or the flow when
// given, else where its top Via says (RFC 3261 §18.2.2, RFC 3581).
func (e *Edge) sendResponse(res *sip.Response, h micro.Headers) error {
	transport, dest, err := destination(h)
	if err != nil {
		return err
	}
	if transport == "" {
		via := res.Via()
		if via == nil {
			return errors.New("response has no Via")
		}
		transport, dest = via.Transport, viaDestination(via)
	}
	res.SetTransport(strings.ToUpper(transport))
	res.SetDestination(dest)
	return e.srv.WriteResponse(res)
}

func viaDestination(via *sip.ViaHeader) string {
	host := via.Host
	if r, ok := via.Params.Get("received"); ok && r != "" {
		host = r
	}
	port := via.Port
	if rp, ok := via.Params.Get("rport"); ok && rp != "" {
		port, _ = strconv.Atoi(rp)
	}
	if port == 0 {
		port = sip.DefaultPort(via.Transport)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// done acknowledges a stateless send or a cancel.
func done(mr micro.Request, err error) {
	if err != nil {
		sendError(mr, wire.RefuseTransport, err.Error())
		return
	}
	if mr.Reply() != "" {
		_ = mr.Respond(nil)
	}
}

func sendError(mr micro.Request, code, text string) {
	if mr.Reply() != "" {
		_ = mr.Error(code, text, nil)
	}
}
