package sipmsg

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestReplaceHeaders: every header of the name goes, whatever its case.
func TestReplaceHeaders(t *testing.T) {
	raw := "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n" +
		"max-breadth: 1000\r\nMax-Breadth: 7\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	ReplaceHeaders(req, "Max-Breadth", "3")
	hs := req.GetHeaders("Max-Breadth")
	if len(hs) != 1 || hs[0].Value() != "3" {
		t.Fatalf("Max-Breadth after replace: %v, want just 3", hs)
	}
}
