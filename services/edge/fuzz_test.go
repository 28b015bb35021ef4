package edge

import (
	"net"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipmsg"
)

// FuzzEdgeInput drives the edge's datagram input path: the raw check, then
// sipgo's parser and the parsed check, then building the answer the edge would
// send. Whatever the bytes, the outcome is a response or a drop, never a panic.
// The seed corpus (testdata/fuzz/FuzzEdgeInput) holds RFC 4475's torture
// messages as sipgo's module ships them, and a valid OPTIONS.
func FuzzEdgeInput(f *testing.F) {
	e := testEdge()
	// A CANCEL for a tracked INVITE is taken in the filter: one such INVITE is tracked.
	e.invites.m["z9hG4bK776asdhds|192.0.2.1:5060"] = &inviteRelay{key: "z9hG4bK776asdhds|192.0.2.1:5060", cancelled: make(chan *sip.Request, 1)}
	remote := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5060}
	f.Add([]byte("CANCEL sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, resp := e.inspect(data, remote)
		if out != nil && resp != nil {
			t.Fatal("a datagram was both passed on and answered")
		}
		if out == nil {
			return
		}
		msg, err := sip.NewParser().ParseSIP(out)
		if err != nil {
			return // sipgo drops it and the edge counts it
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		code, reason := 200, "OK"
		if v := checkParsed(req); v.code != 0 {
			code, reason = v.code, v.reason
		}
		_ = sipmsg.NewResponse(req, code, reason, nil, e.ids).String()
	})
}
