package edge

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestInviteKey: a CANCEL finds its INVITE (RFC 3261 §9.2) by the key both
// give, with an RFC 3261 branch or an RFC 2543 one; another hop's does not.
func TestInviteKey(t *testing.T) {
	req := func(method, via string) *sip.Request {
		t.Helper()
		raw := method + " sip:bob@example.com SIP/2.0\r\nVia: " + via + "\r\nFrom: <sip:a@example.com>;tag=1\r\n" +
			"To: <sip:bob@example.com>\r\nCall-ID: k1\r\nCSeq: 4 " + method + "\r\nContent-Length: 0\r\n\r\n"
		m, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Request)
	}
	for _, via := range []string{"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKk1", "SIP/2.0/UDP 192.0.2.1;branch=old2543"} {
		inv, cancel := inviteKey(req("INVITE", via)), inviteKey(req("CANCEL", via))
		if inv == "" || inv != cancel {
			t.Errorf("%s: INVITE key %q, CANCEL key %q", via, inv, cancel)
		}
		other := inviteKey(req("CANCEL", strings.Replace(via, "192.0.2.1", "192.0.2.2", 1)))
		if other == inv {
			t.Errorf("%s: a CANCEL from another sent-by matched", via)
		}
	}
}
