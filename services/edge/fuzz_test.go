package edge

import (
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
	f.Fuzz(func(t *testing.T, data []byte) {
		out, resp := e.inspect(data, nil)
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
