package main

import (
	"strings"
	"testing"
	"time"
)

// TestMessageSize: a UDP datagram carries up to 65,507 bytes and the edge
// reads it whole; what is larger than --max-message-size is answered 513
// (RFC 3261 §21.5.14) on UDP and on TCP, where the connection stays up and
// takes the next request; a response too large for an MTU still goes back
// over UDP, the transport its request came by (§18.2.2).
func TestMessageSize(t *testing.T) {
	t.Run("a 64 KB MESSAGE over UDP is taken", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		body := strings.Repeat("x", 64000)
		res := newUA(t, p.sip).call().do("MESSAGE", []string{"Content-Type: text/plain"}, body)
		wantCode(t, res, 200)
	})
	t.Run("a 100 KB MESSAGE over TCP is 513 and the connection goes on", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		u := newTCPUA(t, p.sip)
		res := u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, strings.Repeat("x", 100_000))
		wantCode(t, res, 513)
		wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
	})
	t.Run("over --max-message-size is 513 on UDP and TCP", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas", "--max-message-size", "2000")
		body := strings.Repeat("x", 2500)
		wantCode(t, newUA(t, p.sip).call().do("MESSAGE", []string{"Content-Type: text/plain"}, body), 513)
		u := newTCPUA(t, p.sip)
		wantCode(t, u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, body), 513)
		wantCode(t, u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, "small"), 200)
		if n := p.counter(t, "siphon_sip_responses_total", `role="edge"`, `method="MESSAGE"`, `code="513"`); n < 2 {
			t.Fatalf("513s counted %v, want the UDP and the TCP one", n)
		}
	})
	t.Run("a 10 KB response goes back over UDP", func(t *testing.T) {
		p := start(t, true, "--mode", "minimal")
		// One datagram, never retransmitted (a retransmission would be
		// answered from the edge's replay cache, by another path). Its
		// second Via, as a proxy on the way would add, is echoed in the 200.
		big := "OPTIONS sip:service@" + p.sip + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKbig1\r\n" +
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbig2;x=" + strings.Repeat("y", 10_000) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:caller@example.com>;tag=big\r\nTo: <sip:service@example.com>\r\n" +
			"Call-ID: big-response@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		answer := udpExchange(t, p.sip, []byte(big), 10*time.Second)
		if !strings.HasPrefix(string(answer), "SIP/2.0 200 ") || len(answer) < 10_000 {
			t.Fatalf("got %d bytes (%.40q), want the 200 with the big Via echoed", len(answer), answer)
		}
	})
}
