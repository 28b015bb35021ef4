package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The send path: roles hand the edge complete SIP messages to send. A request
// (other than ACK) runs a client transaction here and every response it gets is
// published back to the asking role, the final one last. Responses and ACKs are
// sent statelessly and acknowledged with an empty reply (or a micro error).

// sendTimeout bounds one client transaction: an INVITE may ring for Timer C.
const sendTimeout = timerC + 32*time.Second

// startSend joins the bus as the "edge" micro service: this edge's own send
// subject, and the shared one any edge may serve.
func (e *Edge) startSend() error {
	svc, err := micro.AddService(e.nc, micro.Config{
		Name:        "edge",
		Version:     sipbus.Version,
		Description: "siphon SIP edge " + e.cfg.ID,
		QueueGroup:  wire.QueueEdge,
		Metadata:    map[string]string{"edge_id": e.cfg.ID, "mode": e.mode.Name},
	})
	if err != nil {
		return fmt.Errorf("edge: add send service: %w", err)
	}
	e.sendSvc = svc
	handler := micro.HandlerFunc(e.handleSend)
	if err := svc.AddEndpoint("send", handler, micro.WithEndpointSubject(wire.EdgeSend(e.cfg.ID))); err != nil {
		return fmt.Errorf("edge: add send endpoint: %w", err)
	}
	if err := svc.AddEndpoint("send-any", handler, micro.WithEndpointSubject(wire.EdgeSendAny)); err != nil {
		return fmt.Errorf("edge: add send-any endpoint: %w", err)
	}
	return nil
}

func (e *Edge) handleSend(mr micro.Request) {
	msg, err := sip.ParseMessage(mr.Data())
	if err != nil {
		sendError(mr, "400", "unparseable SIP message: "+err.Error())
		return
	}
	h := mr.Headers()
	switch m := msg.(type) {
	case *sip.Response:
		done(mr, e.sendResponse(m, h))
	case *sip.Request:
		if err := e.address(m, h); err != nil {
			sendError(mr, "400", err.Error())
			return
		}
		if m.IsAck() {
			done(mr, e.client.WriteRequest(m, noBuild))
			return
		}
		// The transaction outlives this callback; micro's subscription must not wait for it.
		go e.sendRequest(m, mr)
	}
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
	}
	transport = strings.ToLower(req.Transport())
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Params: sip.NewParams(),
	}
	via.Params.Add("branch", e.ids.Branch())
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

// sendRequest runs the client transaction and streams every response back.
func (e *Edge) sendRequest(req *sip.Request, mr micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	tx, err := e.client.TransactionRequest(ctx, req, noBuild)
	if err != nil {
		e.sendSynthesized(mr, req, 503, "Service Unavailable", "transport: "+err.Error())
		return
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			res.RemoveHeader("Via") // the edge's own: the role never sees it
			e.publishReply(mr, nats.Header{}, []byte(res.String()))
			if res.StatusCode >= 200 {
				return
			}
		case <-tx.Done():
			err := tx.Err()
			if errors.Is(err, sip.ErrTransactionTimeout) {
				e.sendSynthesized(mr, req, 408, "Request Timeout", "timeout: no response from "+req.Destination())
			} else {
				e.sendSynthesized(mr, req, 503, "Service Unavailable", fmt.Sprintf("transport: %v", err))
			}
			return
		case <-ctx.Done():
			e.sendSynthesized(mr, req, 408, "Request Timeout", "timeout: transaction lasted too long")
			return
		}
	}
}

// sendSynthesized tells the role its request failed, as a SIP response it can
// handle like any other, with Siphon-Error saying why.
func (e *Edge) sendSynthesized(mr micro.Request, req *sip.Request, code int, reason, why string) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.RemoveHeader("Via")
	e.publishReply(mr, nats.Header{wire.HdrError: {why}}, []byte(res.String()))
}

func (e *Edge) publishReply(mr micro.Request, h nats.Header, data []byte) {
	if mr.Reply() == "" {
		return
	}
	if err := e.nc.PublishMsg(&nats.Msg{Subject: mr.Reply(), Header: h, Data: data}); err != nil {
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

// done acknowledges a stateless send.
func done(mr micro.Request, err error) {
	if err != nil {
		sendError(mr, "503", err.Error())
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
