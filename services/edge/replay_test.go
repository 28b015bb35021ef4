package edge

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestReplayKeys: the key from the raw datagram (read filter) and from sipgo's
// parse (serve) must agree, or retransmissions would slip through to the role.
func TestReplayKeys(t *testing.T) {
	for _, via := range []string{
		"SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa1;rport",
		"SIP/2.0/UDP Host.Example.com;branch=z9hG4bKa2",
		"SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa3",
		"SIP / 2.0 / UDP 192.0.2.1 ; branch = z9hG4bKa4",
	} {
		raw := "OPTIONS sip:a@b SIP/2.0\r\nVia: " + via + "\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n" +
			"Call-ID: k\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		m, v := splitRaw([]byte(raw))
		if v.code != 0 {
			t.Fatalf("%s: %v", via, v)
		}
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", via, err)
		}
		rk, pk := rawReplayKey(m), parsedReplayKey(msg.(*sip.Request))
		// sipgo reads no branch from "branch = x"; without a parsed key the
		// edge leaves the transaction to sipgo, which absorbs retransmissions
		// itself, so only a disagreement between two keys is wrong.
		if rk == "" || (pk != "" && rk != pk) {
			t.Errorf("%s: raw key %q, parsed key %q", via, rk, pk)
		}
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache()
	defer c.close()
	if _, known := c.lookup("k"); known {
		t.Fatal("empty cache knows a key")
	}
	c.pending("k")
	if res, known := c.lookup("k"); !known || res != nil {
		t.Fatalf("pending: %q %v", res, known)
	}
	c.complete("k", []byte("SIP/2.0 200 OK"))
	if res, known := c.lookup("k"); !known || string(res) != "SIP/2.0 200 OK" {
		t.Fatalf("complete: %q %v", res, known)
	}
	// The ring drops each key once its second comes round again.
	for range len(c.ring) {
		c.advance()
	}
	if _, known := c.lookup("k"); known {
		t.Fatal("a key outlived the ring")
	}
}
