package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The callee's answer in these tests.
const answerSDP = "v=0\r\no=callee 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// b2bCall is a call through the b2bua: the caller's dialog and the INVITE
// the callee got.
type b2bCall struct {
	t              *testing.T
	caller, callee *ua
	d              *dialog
	cseq           uint32
	inv            *sip.Request
	calleeTag      string
}

// dial sends the caller's INVITE (body, when set, is its offer) to user and
// takes the B leg's INVITE at the callee.
func dial(t *testing.T, caller, callee *ua, user, body string, hdrs ...string) *b2bCall {
	t.Helper()
	d := caller.call()
	d.ruri = "sip:" + user + "@example.com"
	raw, cseq := d.req("INVITE", hdrs, body)
	caller.send(raw)
	return &b2bCall{t: t, caller: caller, callee: callee, d: d, cseq: cseq, inv: callee.request("INVITE", 10*time.Second), calleeTag: "callee-" + d.callID[:8]}
}

// answer has the callee answer 200 with body, and returns the caller's 200.
func (c *b2bCall) answer(body string) *sip.Response {
	c.t.Helper()
	c.callee.answer(c.inv, 200, "OK", c.calleeTag, nil, body)
	res := c.caller.final("INVITE", c.cseq)
	wantCode(c.t, res, 200)
	c.d.toTag, _ = res.To().Params.Get("tag")
	c.d.ruri = res.Contact().Address.String()
	return res
}

// up answers the call and completes it: the callee's 200 with answerSDP,
// its ACK from the b2bua, the caller's ACK.
func (c *b2bCall) up() {
	c.t.Helper()
	c.answer(answerSDP)
	c.callee.request("ACK", 10*time.Second)
	c.d.ack(c.cseq, "")
}

// calleeRequest builds a request the callee sends in its dialog with the b2bua.
func (c *b2bCall) calleeRequest(method string, cseq int, hdrs []string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + c.inv.Contact().Address.String() + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP " + c.callee.addr + ";branch=z9hG4bK" + c.calleeTag + method + strings.Repeat("x", cseq) + "\r\n")
	b.WriteString("Max-Forwards: 70\r\nFrom: " + c.inv.To().Value() + ";tag=" + c.calleeTag + "\r\nTo: " + c.inv.From().Value() + "\r\n")
	b.WriteString("Call-ID: " + c.inv.CallID().Value() + "\r\nCSeq: " + strconv.Itoa(cseq) + " " + method + "\r\n")
	b.WriteString("Contact: <" + c.callee.uri("ua", c.callee.addr) + ">\r\n")
	return finish(&b, hdrs, body)
}

// TestB2BUACall: a call bridged through the b2bua (RFC 7092 §3.1): the
// callee sees only the b2bua's Call-ID, tag, Via and Contact and the
// caller's SDP unchanged, the caller only the b2bua's tag and Contact and
// the callee's SDP; BYE from the caller ends both legs, and in a second
// call BYE from the callee.
func TestB2BUACall(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "bob", "<sip:bob@"+callee.addr+">")
	caller := newUA(t, p.sip)

	c := dial(t, caller, callee, "bob", offer)
	inv := c.inv
	if inv.CallID().Value() == c.d.callID || tagOf(inv.From()) == c.d.fromTag || string(inv.Body()) != offer {
		t.Fatalf("B-leg INVITE with the caller's Call-ID or tag, or an SDP changed:\n%s", inv)
	}
	if vias := inv.GetHeaders("Via"); len(vias) != 1 || strings.Contains(vias[0].Value(), caller.addr) {
		t.Fatalf("B-leg INVITE Vias %v: want the edge's alone", vias)
	}
	if !strings.Contains(inv.Contact().Address.String(), "b2bua@") || inv.GetHeader("Record-Route") != nil {
		t.Fatalf("B-leg INVITE: want the b2bua's Contact and no Record-Route:\n%s", inv)
	}
	callee.answer(inv, 180, "Ringing", c.calleeTag, nil, "")
	ringing := caller.response("INVITE", c.cseq, 180)
	res := c.answer(answerSDP)
	if tagOf(ringing.To()) != c.d.toTag || c.d.toTag == c.calleeTag || string(res.Body()) != answerSDP ||
		strings.Contains(res.String(), callee.addr) || strings.Contains(res.String(), inv.CallID().Value()) {
		t.Fatalf("caller's 200: want the b2bua's tag (as on the 180), its Contact, the callee's SDP, nothing of the B leg:\n%s", res)
	}
	callee.request("ACK", 10*time.Second) // an early offer: the b2bua ACKs the callee's 2xx itself
	c.d.ack(c.cseq, "")
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	bye := callee.request("BYE", 10*time.Second)
	if bye.CallID().Value() != inv.CallID().Value() || tagOf(bye.To()) != c.calleeTag {
		t.Fatalf("BYE at the callee outside its dialog:\n%s", bye)
	}
	callee.answer(bye, 200, "OK", "", nil, "")

	// The callee hangs up this one.
	c = dial(t, caller, callee, "bob", offer)
	c.up()
	callee.send(c.calleeRequest("BYE", 2, nil, ""))
	bye = caller.request("BYE", 10*time.Second)
	if bye.CallID().Value() != c.d.callID || tagOf(bye.From()) != c.d.toTag || tagOf(bye.To()) != c.d.fromTag {
		t.Fatalf("BYE at the caller outside its dialog:\n%s", bye)
	}
	caller.answer(bye, 200, "OK", "", nil, "")
	wantCode(t, callee.final("BYE", 2), 200)
}

func tagOf(h interface{ Value() string }) string {
	_, tag, _ := strings.Cut(h.Value(), ";tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag
}

// TestB2BUAFinals: the callee's 486 is the caller's 486 (with the b2bua's
// tag); a user with no binding gets 404; the caller's CANCEL reaches a
// ringing callee, and the caller gets 487.
func TestB2BUAFinals(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "carl", "<sip:carl@"+callee.addr+">")
	caller := newUA(t, p.sip)

	c := dial(t, caller, callee, "carl", offer)
	callee.answer(c.inv, 486, "Busy Here", c.calleeTag, nil, "")
	callee.request("ACK", 10*time.Second)
	if res := caller.final("INVITE", c.cseq); res.StatusCode != 486 || tagOf(res.To()) == c.calleeTag {
		t.Fatalf("caller's final: want 486 with the b2bua's tag:\n%s", res)
	}

	d := caller.call()
	d.ruri = "sip:nobody@example.com"
	wantCode(t, d.do("INVITE", nil, offer), 404)

	c = dial(t, caller, callee, "carl", offer)
	callee.answer(c.inv, 180, "Ringing", c.calleeTag, nil, "")
	caller.response("INVITE", c.cseq, 180)
	c.d.branch-- // the CANCEL's Via is the INVITE's (RFC 3261 §9.1)
	cancel, _ := c.d.req("CANCEL", nil, "")
	caller.send(cancel)
	wantCode(t, caller.final("CANCEL", c.cseq), 200)
	got := callee.request("CANCEL", 10*time.Second)
	callee.answer(got, 200, "OK", "", nil, "")
	callee.answer(c.inv, 487, "Request Terminated", c.calleeTag, nil, "")
	callee.request("ACK", 10*time.Second)
	wantCode(t, caller.final("INVITE", c.cseq), 487)

	// A BYE in the early dialog ends the INVITE as a CANCEL does (RFC
	// 3261 §15.1.2): the callee gets the CANCEL, the caller 487.
	c = dial(t, caller, callee, "carl", offer)
	callee.answer(c.inv, 180, "Ringing", c.calleeTag, nil, "")
	c.d.toTag = tagOf(caller.response("INVITE", c.cseq, 180).To())
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	got = callee.request("CANCEL", 10*time.Second)
	callee.answer(got, 200, "OK", "", nil, "")
	callee.answer(c.inv, 487, "Request Terminated", c.calleeTag, nil, "")
	callee.request("ACK", 10*time.Second)
	wantCode(t, caller.final("INVITE", c.cseq), 487)
}

// TestB2BUAEarlyMediaAndLateOffer: a 183 with SDP reaches the caller with
// its SDP; a caller's INVITE without an offer gets the callee's offer in the
// 200, and the answer in the caller's ACK goes into the callee's ACK.
func TestB2BUAEarlyMediaAndLateOffer(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "dina", "<sip:dina@"+callee.addr+">")
	caller := newUA(t, p.sip)

	c := dial(t, caller, callee, "dina", offer)
	callee.answer(c.inv, 183, "Session Progress", c.calleeTag, []string{"Content-Type: application/sdp"}, answerSDP)
	if early := caller.response("INVITE", c.cseq, 183); string(early.Body()) != answerSDP {
		t.Fatalf("183 at the caller without the callee's SDP:\n%s", early)
	}
	c.up()

	late := dial(t, caller, callee, "dina", "")
	if len(late.inv.Body()) != 0 {
		t.Fatalf("a late offer's B-leg INVITE with a body:\n%s", late.inv)
	}
	if res := late.answer(offer); string(res.Body()) != offer {
		t.Fatalf("caller's 200 without the callee's offer:\n%s", res)
	}
	late.d.ack(late.cseq, answerSDP)
	if ack := callee.request("ACK", 10*time.Second); string(ack.Body()) != answerSDP {
		t.Fatalf("callee's ACK without the caller's answer:\n%s", ack)
	}
}

// TestB2BUAInCall: hold from the caller and resume from the callee, hold
// from the callee and a codec change by UPDATE from the caller (relayed
// each way, SDP as it came), MESSAGE and INFO, and glare: a re-INVITE while
// the other side's is being relayed gets 491.
func TestB2BUAInCall(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "emil", "<sip:emil@"+callee.addr+">")
	caller := newUA(t, p.sip)
	c := dial(t, caller, callee, "emil", offer)
	c.up()

	hold := offerWith("2", "0", "sendonly")
	raw, cseq := c.d.req("INVITE", nil, hold)
	caller.send(raw)
	reinv := callee.request("INVITE", 10*time.Second)
	if reinv.CallID().Value() != c.inv.CallID().Value() || string(reinv.Body()) != hold {
		t.Fatalf("hold at the callee: want its dialog and the caller's SDP:\n%s", reinv)
	}
	// Glare: the callee's own re-INVITE while the caller's is relayed.
	callee.send(c.calleeRequest("INVITE", 2, nil, answerSDP))
	wantCode(t, callee.final("INVITE", 2), 491)
	callee.answer(reinv, 200, "OK", "", []string{"Content-Type: application/sdp"}, strings.Replace(answerSDP, "RTP/AVP 0", "RTP/AVP 0\r\na=recvonly", 1))
	if res := caller.final("INVITE", cseq); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "recvonly") {
		t.Fatalf("hold's 200 at the caller: want the callee's recvonly answer:\n%s", res)
	}
	callee.request("ACK", 10*time.Second) // the b2bua ACKs the callee's 2xx
	c.d.ack(cseq, "")

	// The callee resumes.
	callee.send(c.calleeRequest("INVITE", 3, nil, answerSDP))
	resume := caller.request("INVITE", 10*time.Second)
	if resume.CallID().Value() != c.d.callID || string(resume.Body()) != answerSDP {
		t.Fatalf("resume at the caller: want its dialog and the callee's SDP:\n%s", resume)
	}
	caller.answer(resume, 200, "OK", "", []string{"Content-Type: application/sdp"}, offer)
	if res := callee.final("INVITE", 3); res.StatusCode != 200 || string(res.Body()) != offer {
		t.Fatalf("resume's 200 at the callee: want the caller's SDP:\n%s", res)
	}
	caller.request("ACK", 10*time.Second)

	// The other way round: the callee holds, the caller resumes with a
	// codec change by UPDATE (RFC 3311).
	callee.send(c.calleeRequest("INVITE", 4, nil, strings.Replace(answerSDP, "RTP/AVP 0", "RTP/AVP 0\r\na=sendonly", 1)))
	hold2 := caller.request("INVITE", 10*time.Second)
	if !strings.Contains(string(hold2.Body()), "sendonly") {
		t.Fatalf("the callee's hold at the caller without its SDP:\n%s", hold2)
	}
	caller.answer(hold2, 200, "OK", "", []string{"Content-Type: application/sdp"}, offerWith("3", "0", "recvonly"))
	wantCode(t, callee.final("INVITE", 4), 200)
	caller.request("ACK", 10*time.Second)
	pcma := offerWith("4", "8", "")
	raw, cseq = c.d.req("UPDATE", []string{"Content-Type: application/sdp"}, pcma)
	caller.send(raw)
	update := callee.request("UPDATE", 10*time.Second)
	if update.CallID().Value() != c.inv.CallID().Value() || string(update.Body()) != pcma {
		t.Fatalf("UPDATE at the callee: want its dialog and the caller's new codec:\n%s", update)
	}
	callee.answer(update, 200, "OK", "", []string{"Content-Type: application/sdp"}, strings.Replace(answerSDP, "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", "RTP/AVP 8\r\na=rtpmap:8 PCMA/8000", 1))
	if res := caller.final("UPDATE", cseq); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "PCMA") {
		t.Fatalf("UPDATE's 200 at the caller: want the callee's PCMA answer:\n%s", res)
	}
	callee.send(c.calleeRequest("MESSAGE", 5, []string{"Content-Type: text/plain"}, "hello"))
	msg := caller.request("MESSAGE", 10*time.Second)
	if string(msg.Body()) != "hello" || msg.CallID().Value() != c.d.callID {
		t.Fatalf("MESSAGE at the caller: want its dialog and the text:\n%s", msg)
	}
	caller.answer(msg, 200, "OK", "", nil, "")
	wantCode(t, callee.final("MESSAGE", 5), 200)

	raw, cseq = c.d.req("INFO", []string{"Content-Type: application/dtmf-relay", "Info-Package: dtmf"}, "Signal=5\r\nDuration=160\r\n")
	caller.send(raw)
	info := callee.request("INFO", 10*time.Second)
	if info.CallID().Value() != c.inv.CallID().Value() || string(info.Body()) != "Signal=5\r\nDuration=160\r\n" ||
		info.GetHeader("Info-Package") == nil {
		t.Fatalf("INFO at the callee: want its dialog, the body and Info-Package:\n%s", info)
	}
	callee.answer(info, 200, "OK", "", nil, "")
	wantCode(t, caller.final("INFO", cseq), 200)
}

// TestB2BUATransports: a caller over TCP to a callee over UDP, the reverse,
// and a caller over TLS to a callee over TCP: each leg on its own transport,
// a leg over a connection on that connection.
func TestB2BUATransports(t *testing.T) {
	cert, key := selfSigned(t)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := start(t, true, "--mode", "b2bua", "--sips-bind", tlsAddr, "--tls-cert", cert, "--tls-key", key)
	udpCallee := newUA(t, p.sip)
	registerBindings(t, p, "fred", "<sip:fred@"+udpCallee.addr+">")
	tcpCaller := newTCPUA(t, p.sip)
	c := dial(t, tcpCaller, udpCallee, "fred", offer)
	if v := c.inv.GetHeader("Via").Value(); !strings.HasPrefix(v, "SIP/2.0/UDP") {
		t.Fatalf("B leg to a UDP callee over %s", v)
	}
	c.answer(answerSDP) // over the caller's connection
	udpCallee.request("ACK", 10*time.Second)
	c.d.ack(c.cseq, "")
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	udpCallee.answer(udpCallee.request("BYE", 10*time.Second), 200, "OK", "", nil, "")

	tcpCallee := newTCPUA(t, p.sip)
	registerOverTCP(t, tcpCallee, p.sip, "gina")
	c = dial(t, newUA(t, p.sip), tcpCallee, "gina", offer) // on the connection it registered over
	if v := c.inv.GetHeader("Via").Value(); !strings.HasPrefix(v, "SIP/2.0/TCP") {
		t.Fatalf("B leg to a TCP callee over %s", v)
	}
	c.answer(answerSDP)
	tcpCallee.request("ACK", 10*time.Second)

	tlsCaller := newTLSUA(t, tlsAddr)
	c = dial(t, tlsCaller, tcpCallee, "gina", offer)
	if v := c.inv.GetHeader("Via").Value(); !strings.HasPrefix(v, "SIP/2.0/TCP") {
		t.Fatalf("B leg to a TCP callee over %s", v)
	}
	res := c.answer(answerSDP) // over the caller's TLS connection
	if !strings.Contains(res.Contact().Address.String(), "transport=tls") {
		t.Fatalf("the TLS caller's 200: want the b2bua's Contact with transport=tls:\n%s", res)
	}
	tcpCallee.request("ACK", 10*time.Second)
	c.d.ack(c.cseq, "")
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	tcpCallee.answer(tcpCallee.request("BYE", 10*time.Second), 200, "OK", "", nil, "")
}

// TestB2BUAMaxCallDuration: --max-call-duration ends a bridged call with BYE
// (Reason naming it) on both legs.
func TestB2BUAMaxCallDuration(t *testing.T) {
	p := start(t, true, "--mode", "b2bua", "--max-call-duration", "1s")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "hugo", "<sip:hugo@"+callee.addr+">")
	caller := newUA(t, p.sip)
	c := dial(t, caller, callee, "hugo", offer)
	c.up()
	for _, u := range []*ua{caller, callee} {
		bye := u.request("BYE", 10*time.Second)
		if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "max-call-duration") {
			t.Fatalf("BYE without Reason max-call-duration:\n%s", bye)
		}
		u.answer(bye, 200, "OK", "", nil, "")
	}
}

// TestB2BUAReplicas: calls live in Redis, so a call bridged by one b2bua
// process is hung up through another after the first was SIGKILLed.
func TestB2BUAReplicas(t *testing.T) {
	nats, redis := testutil.NATSServer(t), testutil.Redis(t)
	shared := []string{"--mode", "b2bua", "--nats", nats.URL, "--redis", redis}
	edge := start(t, true, append(shared, "--role", "edge,registrar")...)
	first := start(t, false, append(shared, "--role", "b2bua")...)
	ev := watchRole(t, nats.URL, wire.RoleB2BUA)
	callee := newUA(t, edge.sip)
	registerBindings(t, edge, "ida", "<sip:ida@"+callee.addr+">")
	caller := newUA(t, edge.sip)
	c := dial(t, caller, callee, "ida", offer)
	c.up()
	bridgedBy := ev.await(wire.EventCallBridged, "").Replica

	start(t, false, append(shared, "--role", "b2bua")...)
	first.stop(syscall.SIGKILL)
	nats.WaitSubscribers(t, wire.SIPRequest(wire.RoleB2BUA, "BYE"), 1, 10*time.Second)
	callee.send(c.calleeRequest("BYE", 2, nil, ""))
	caller.answer(caller.request("BYE", 10*time.Second), 200, "OK", "", nil, "")
	wantCode(t, callee.final("BYE", 2), 200)
	ended := ev.await(wire.EventCallEnded, "")
	if ended.Replica == bridgedBy || ended.EndedBy != "callee" {
		t.Fatalf("call.ended by replica %s (the killed one was %s), ended_by %q: want another replica, the callee", ended.Replica, bridgedBy, ended.EndedBy)
	}
}

// TestB2BUACredentials: a callee's 407 is answered by the b2bua with the
// called user's credentials from --b2bua-credentials (the INVITE again, its
// CSeq one higher, in the same Call-ID), and the caller sees only the 200;
// for a user with none the 407 reaches the caller with its challenge.
func TestB2BUACredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b2bua-credentials.json")
	if err := os.WriteFile(file, []byte(`{"kate": "s3cret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, true, "--mode", "b2bua", "--b2bua-credentials", file)
	callee := newUA(t, p.sip)
	registerBindings(t, p, "kate", "<sip:kate@"+callee.addr+">")
	registerBindings(t, p, "leo", "<sip:leo@"+callee.addr+">")
	caller := newUA(t, p.sip)
	const challenge = `Digest realm="pbx.example", nonce="4f2b7c", qop="auth", algorithm=MD5`

	c := dial(t, caller, callee, "kate", offer)
	callee.answer(c.inv, 407, "Proxy Authentication Required", c.calleeTag, []string{"Proxy-Authenticate: " + challenge}, "")
	callee.request("ACK", 10*time.Second)
	again := callee.request("INVITE", 10*time.Second)
	if again.CallID().Value() != c.inv.CallID().Value() || tagOf(again.From()) != tagOf(c.inv.From()) || again.CSeq().SeqNo != c.inv.CSeq().SeqNo+1 {
		t.Fatalf("the INVITE again: want the same Call-ID and tag, CSeq one higher:\n%s", again)
	}
	h := again.GetHeader("Proxy-Authorization")
	if h == nil {
		t.Fatalf("the INVITE again without Proxy-Authorization:\n%s", again)
	}
	got, err := digest.ParseCredentials(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	chal, _ := digest.ParseChallenge(challenge)
	want, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: got.URI, Username: "kate", Password: "s3cret", Count: got.Nc, Cnonce: got.Cnonce})
	if err != nil || got.Username != "kate" || got.Response != want.Response || got.URI != again.Recipient.String() {
		t.Fatalf("Proxy-Authorization %s: want kate's digest of INVITE %s", h.Value(), again.Recipient.String())
	}
	c.inv = again
	c.answer(answerSDP)
	if ack := callee.request("ACK", 10*time.Second); ack.CSeq().SeqNo != again.CSeq().SeqNo {
		t.Fatalf("ACK with CSeq %d, want the answered INVITE's %d", ack.CSeq().SeqNo, again.CSeq().SeqNo)
	}
	c.d.ack(c.cseq, "")
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	callee.answer(callee.request("BYE", 10*time.Second), 200, "OK", "", nil, "")

	c = dial(t, caller, callee, "leo", offer)
	callee.answer(c.inv, 407, "Proxy Authentication Required", c.calleeTag, []string{"Proxy-Authenticate: " + challenge}, "")
	res := caller.final("INVITE", c.cseq)
	if res.StatusCode != 407 || res.GetHeader("Proxy-Authenticate") == nil || res.GetHeader("Proxy-Authenticate").Value() != challenge {
		t.Fatalf("caller's final for leo (no credentials): want the 407 with its challenge:\n%s", res)
	}
}

// TestB2BUAPRACK: reliable provisionals per leg (RFC 3262): the callee's
// reliable 183 is PRACKed by the b2bua in the callee's early dialog, and the
// caller, which supports 100rel, gets a reliable 183 of the b2bua's own
// (its RSeq), which it PRACKs in its dialog.
func TestB2BUAPRACK(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "mona", "<sip:mona@"+callee.addr+">")
	caller := newUA(t, p.sip)
	c := dial(t, caller, callee, "mona", offer, "Supported: 100rel")
	if !strings.Contains(c.inv.GetHeader("Supported").Value(), "100rel") {
		t.Fatalf("B-leg INVITE without Supported: 100rel:\n%s", c.inv)
	}
	callee.answer(c.inv, 183, "Session Progress", c.calleeTag, []string{"Require: 100rel", "RSeq: 7", "Content-Type: application/sdp"}, answerSDP)
	prack := callee.request("PRACK", 10*time.Second)
	if r := prack.GetHeader("RAck"); r == nil || r.Value() != "7 "+strconv.FormatUint(uint64(c.inv.CSeq().SeqNo), 10)+" INVITE" ||
		prack.CallID().Value() != c.inv.CallID().Value() || tagOf(prack.To()) != c.calleeTag {
		t.Fatalf("PRACK at the callee: want RAck 7 %d INVITE in its early dialog:\n%s", c.inv.CSeq().SeqNo, prack)
	}
	callee.answer(prack, 200, "OK", "", nil, "")

	early := caller.response("INVITE", c.cseq, 183)
	rseq := early.GetHeader("RSeq")
	if rseq == nil || !strings.Contains(early.GetHeader("Require").Value(), "100rel") || rseq.Value() == "7" || string(early.Body()) != answerSDP {
		t.Fatalf("caller's 183: want a reliable one with the b2bua's own RSeq and the callee's SDP:\n%s", early)
	}
	c.d.toTag, c.d.ruri = tagOf(early.To()), early.Contact().Address.String()
	wantCode(t, c.d.do("PRACK", []string{"RAck: " + rseq.Value() + " " + strconv.FormatUint(uint64(c.cseq), 10) + " INVITE"}, ""), 200)

	c.callee.answer(c.inv, 200, "OK", c.calleeTag, nil, answerSDP)
	wantCode(t, caller.final("INVITE", c.cseq), 200)
	if ack := callee.request("ACK", 10*time.Second); ack.CSeq().SeqNo != c.inv.CSeq().SeqNo {
		t.Fatalf("ACK CSeq %d, want the INVITE's %d", ack.CSeq().SeqNo, c.inv.CSeq().SeqNo)
	}
	c.d.ack(c.cseq, "")
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	if bye := callee.request("BYE", 10*time.Second); bye.CSeq().SeqNo <= prack.CSeq().SeqNo {
		t.Fatalf("BYE CSeq %d at the callee, want above the PRACK's %d", bye.CSeq().SeqNo, prack.CSeq().SeqNo)
	}
}

// TestB2BUASessionTimers: with --b2bua-session-expires the b2bua refreshes
// the session on both legs itself (RFC 4028): each party gets a re-INVITE
// with Session-Expires and the description it was given, at half the
// interval, again and again; a leg that refuses a refresh (481) ends the
// call on the other with BYE.
func TestB2BUASessionTimers(t *testing.T) {
	p := start(t, true, "--mode", "b2bua", "--b2bua-session-expires", "2")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "nina", "<sip:nina@"+callee.addr+">")
	caller := newUA(t, p.sip)
	c := dial(t, caller, callee, "nina", offer, "Supported: timer")
	if se := c.inv.GetHeader("Session-Expires"); se == nil || se.Value() != "2;refresher=uac" {
		t.Fatalf("B-leg INVITE without Session-Expires: 2;refresher=uac:\n%s", c.inv)
	}
	res := c.answer(answerSDP)
	if se := res.GetHeader("Session-Expires"); se == nil || se.Value() != "2;refresher=uas" || res.GetHeader("Require") == nil {
		t.Fatalf("caller's 200 without Session-Expires: 2;refresher=uas and Require: timer:\n%s", res)
	}
	callee.request("ACK", 10*time.Second)
	c.d.ack(c.cseq, "")
	for round := range 2 {
		for _, leg := range []struct {
			u    *ua
			sdp  string
			what string
		}{{caller, answerSDP, "caller"}, {callee, offer, "callee"}} {
			reinv := leg.u.request("INVITE", 10*time.Second)
			if se := reinv.GetHeader("Session-Expires"); se == nil || !strings.HasPrefix(se.Value(), "2;") || string(reinv.Body()) != leg.sdp {
				t.Fatalf("refresh %d at the %s: want Session-Expires 2 and the description it was given:\n%s", round+1, leg.what, reinv)
			}
			if round == 1 && leg.what == "callee" {
				leg.u.answer(reinv, 481, "Call/Transaction Does Not Exist", "", nil, "")
				break
			}
			leg.u.answer(reinv, 200, "OK", "", []string{"Content-Type: application/sdp"}, leg.sdp)
			leg.u.request("ACK", 10*time.Second)
		}
	}
	bye := caller.request("BYE", 10*time.Second)
	if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "session-expired") {
		t.Fatalf("BYE after the failed refresh without Reason session-expired:\n%s", bye)
	}
	caller.answer(bye, 200, "OK", "", nil, "")
}

// TestB2BUARefer: a blind transfer by the callee, then one by the caller
// (RFC 3515, RFC 5589 §6):
// 202 and a NOTIFY "100 Trying"; the target gets an INVITE with the
// caller's description, answers; the caller is re-INVITEd with the target's;
// the referrer hears "200 OK" and gets BYE; the caller's BYE then reaches
// the target. With --enable-refer=false a REFER gets 603.
func TestB2BUARefer(t *testing.T) {
	p := start(t, true, "--mode", "b2bua")
	callee, target := newUA(t, p.sip), newUA(t, p.sip)
	registerBindings(t, p, "olga", "<sip:olga@"+callee.addr+">")
	registerBindings(t, p, "omar", "<sip:omar@"+target.addr+">")
	caller := newUA(t, p.sip)
	c := dial(t, caller, callee, "olga", offer)
	c.up()

	callee.send(c.calleeRequest("REFER", 2, []string{"Refer-To: <sip:omar@example.com>"}, ""))
	wantCode(t, callee.final("REFER", 2), 202)
	trying := callee.request("NOTIFY", 10*time.Second)
	if string(trying.Body()) != "SIP/2.0 100 Trying\r\n" || trying.GetHeader("Event").Value() != "refer" {
		t.Fatalf("first refer NOTIFY: want the sipfrag 100 Trying:\n%s", trying)
	}
	callee.answer(trying, 200, "OK", "", nil, "")
	inv := target.request("INVITE", 10*time.Second)
	if string(inv.Body()) != offer || inv.CallID().Value() == c.inv.CallID().Value() {
		t.Fatalf("the target's INVITE: want the caller's description in a dialog of its own:\n%s", inv)
	}
	const targetSDP = "v=0\r\no=target 3 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	target.answer(inv, 200, "OK", "omar1", []string{"Content-Type: application/sdp"}, targetSDP)
	target.request("ACK", 10*time.Second)
	reinv := caller.request("INVITE", 10*time.Second)
	if reinv.CallID().Value() != c.d.callID || string(reinv.Body()) != targetSDP {
		t.Fatalf("the caller's re-INVITE: want its dialog and the target's description:\n%s", reinv)
	}
	caller.answer(reinv, 200, "OK", "", []string{"Content-Type: application/sdp"}, offer)
	caller.request("ACK", 10*time.Second)
	done := callee.request("NOTIFY", 10*time.Second)
	if string(done.Body()) != "SIP/2.0 200 OK\r\n" || !strings.HasPrefix(done.GetHeader("Subscription-State").Value(), "terminated") {
		t.Fatalf("last refer NOTIFY: want the sipfrag 200 OK, terminated:\n%s", done)
	}
	callee.answer(done, 200, "OK", "", nil, "")
	callee.answer(callee.request("BYE", 10*time.Second), 200, "OK", "", nil, "")

	wantCode(t, c.d.do("BYE", nil, ""), 200)
	if bye := target.request("BYE", 10*time.Second); bye.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("the caller's BYE did not reach the target:\n%s", bye)
	} else {
		target.answer(bye, 200, "OK", "", nil, "")
	}

	// The caller transfers this one: the callee is the transferee.
	c = dial(t, caller, callee, "olga", offer)
	c.up()
	wantCode(t, c.d.do("REFER", []string{"Refer-To: <sip:omar@example.com>"}, ""), 202)
	caller.answer(caller.request("NOTIFY", 10*time.Second), 200, "OK", "", nil, "") // 100 Trying
	inv = target.request("INVITE", 10*time.Second)
	if string(inv.Body()) != answerSDP {
		t.Fatalf("the target's INVITE: want the callee's description:\n%s", inv)
	}
	target.answer(inv, 200, "OK", "omar2", []string{"Content-Type: application/sdp"}, targetSDP)
	target.request("ACK", 10*time.Second)
	reinv = callee.request("INVITE", 10*time.Second)
	if reinv.CallID().Value() != c.inv.CallID().Value() || string(reinv.Body()) != targetSDP {
		t.Fatalf("the callee's re-INVITE: want its dialog and the target's description:\n%s", reinv)
	}
	callee.answer(reinv, 200, "OK", "", []string{"Content-Type: application/sdp"}, answerSDP)
	callee.request("ACK", 10*time.Second)
	if done := caller.request("NOTIFY", 10*time.Second); string(done.Body()) != "SIP/2.0 200 OK\r\n" {
		t.Fatalf("last refer NOTIFY at the caller: want the sipfrag 200 OK:\n%s", done)
	} else {
		caller.answer(done, 200, "OK", "", nil, "")
	}
	caller.answer(caller.request("BYE", 10*time.Second), 200, "OK", "", nil, "")
	callee.send(c.calleeRequest("BYE", 3, nil, ""))
	wantCode(t, callee.final("BYE", 3), 200)
	if bye := target.request("BYE", 10*time.Second); bye.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("the callee's BYE did not reach the target:\n%s", bye)
	} else {
		target.answer(bye, 200, "OK", "", nil, "")
	}

	// A referrer that hangs up right after the 202 (RFC 5589 §6) ends its
	// own leg only: the transfer goes on.
	c = dial(t, caller, callee, "olga", offer)
	c.up()
	callee.send(c.calleeRequest("REFER", 2, []string{"Refer-To: <sip:omar@example.com>"}, ""))
	wantCode(t, callee.final("REFER", 2), 202)
	callee.send(c.calleeRequest("BYE", 3, nil, ""))
	wantCode(t, callee.final("BYE", 3), 200)
	inv = target.request("INVITE", 10*time.Second)
	target.answer(inv, 200, "OK", "omar3", []string{"Content-Type: application/sdp"}, targetSDP)
	target.request("ACK", 10*time.Second)
	reinv = caller.request("INVITE", 10*time.Second)
	caller.answer(reinv, 200, "OK", "", []string{"Content-Type: application/sdp"}, offer)
	caller.request("ACK", 10*time.Second)
	wantCode(t, c.d.do("BYE", nil, ""), 200)
	if bye := target.request("BYE", 10*time.Second); bye.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("after the referrer left, the caller's BYE did not reach the target:\n%s", bye)
	}

	off := start(t, true, "--mode", "b2bua", "--enable-refer=false")
	callee2 := newUA(t, off.sip)
	registerBindings(t, off, "olga", "<sip:olga@"+callee2.addr+">")
	c = dial(t, newUA(t, off.sip), callee2, "olga", offer)
	c.answer(answerSDP)
	callee2.request("ACK", 10*time.Second)
	callee2.send(c.calleeRequest("REFER", 2, []string{"Refer-To: <sip:omar@example.com>"}, ""))
	wantCode(t, callee2.final("REFER", 2), 603)
}
