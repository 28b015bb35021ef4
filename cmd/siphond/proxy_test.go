package main

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipdns/sipdnstest"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// TestProxyCall: a caller calls a registered callee through siphond --mode
// proxy: the callee sees the proxy's Record-Route, Max-Forwards one lower and
// two Vias (SIPp checks them), answers, and the caller's ACK and BYE follow the
// route set through the proxy to the callee.
func TestProxyCall(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	callee, addr := sippUAS(t, "proxy-uas.xml", 0)
	reg := newUAC(t, "udp", p.sip)
	if res := reg.register("bob", "reg-proxy-1", 1, "Contact: <sip:bob@"+addr+">", "Expires: 300"); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	sipp(t, "testdata/proxy-uac.xml", "u1", p.sip, 1, 1, "-s", "bob").mustPass(t, 1)
	passed(t, callee, "callee")
}

// TestProxyRefusals: what the proxy answers itself (RFC 3261 §16.3, §16.5).
func TestProxyRefusals(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	u := newUA(t, p.sip)
	for _, tt := range []struct {
		name  string
		ruri  string
		extra []string
		want  int
	}{
		{"no binding", "sip:nobody@example.com", nil, 404},
		{"foreign domain", "sip:bob@elsewhere.example.net", nil, 403},
		{"Max-Forwards 0", "sip:bob@example.com", []string{"Max-Forwards: 0"}, 483},
		{"unknown Proxy-Require", "sip:bob@example.com", []string{"Proxy-Require: frobnication"}, 420},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := u.call()
			d.ruri = tt.ruri
			hdrs := tt.extra
			raw, cseq := d.req("INVITE", hdrs, offer)
			if len(tt.extra) > 0 && strings.HasPrefix(tt.extra[0], "Max-Forwards") {
				raw = strings.Replace(raw, "Max-Forwards: 70\r\n", "", 1)
			}
			u.send(raw)
			res := u.final("INVITE", cseq)
			wantCode(t, res, tt.want)
			if tt.want == 420 && (res.GetHeader("Unsupported") == nil || res.GetHeader("Unsupported").Value() != "frobnication") {
				t.Fatalf("420 without Unsupported: frobnication:\n%s", res)
			}
		})
	}
}

// TestProxyForks: bob has two bindings of equal q; both ring at once (RFC
// 3261 §16.6), one answers, and the other gets a CANCEL (§16.7 step 10): SIPp
// requires it.
func TestProxyForks(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	answers, a := sippUAS(t, "proxy-uas.xml", 0)
	rings, b := sippUAS(t, "uas-ring.xml", 10*time.Second)
	reg := newUAC(t, "udp", p.sip)
	res := reg.register("bob", "reg-fork-1", 1, "Contact: <sip:bob@"+a+">, <sip:bob@"+b+">", "Expires: 300")
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 2 {
		t.Fatalf("REGISTER of two contacts: %d\n%s", res.StatusCode, res)
	}
	sipp(t, "testdata/proxy-uac.xml", "u1", p.sip, 1, 1, "-s", "bob").mustPass(t, 1)
	passed(t, answers, "the callee that answered")
	passed(t, rings, "the callee that only rang") // its CANCEL came, and its 487 was ACKed
}

// TestProxyCallerCancels: the caller's CANCEL (answered 200 by the edge)
// reaches every ringing branch through the proxy (RFC 3261 §16.10): carol's
// two phones both get it, and a 487 comes back to the caller.
func TestProxyCallerCancels(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	first, a := sippUAS(t, "uas-ring.xml", 10*time.Second)
	second, b := sippUAS(t, "uas-ring.xml", 10*time.Second)
	registerBindings(t, p, "carol", "<sip:carol@"+a+">", "<sip:carol@"+b+">")
	u := newUA(t, p.sip)
	d := u.call()
	d.ruri = "sip:carol@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	u.send(raw)
	u.response("INVITE", cseq, 180)
	d.branch--
	cancel, _ := d.req("CANCEL", nil, "")
	u.send(cancel)
	wantCode(t, u.final("CANCEL", cseq), 200)
	wantCode(t, u.final("INVITE", cseq), 487)
	passed(t, first, "carol's first phone") // each got the CANCEL and ACKed its 487
	passed(t, second, "carol's second phone")
}

// TestProxyLoop: a binding that points back at the proxy sends the INVITE
// round again unchanged: the second visit is a loop (RFC 3261 §16.3 step 4,
// by the branch of §16.6 step 8) and the caller gets 482.
func TestProxyLoop(t *testing.T) {
	p := start(t, true, "--mode", "proxy")
	u := newUA(t, p.sip)
	reg := "REGISTER sip:" + p.sip + " SIP/2.0\r\nVia: SIP/2.0/UDP " + u.addr + ";branch=z9hG4bKloopreg;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:loop@" + p.sip + ">;tag=l1\r\nTo: <sip:loop@" + p.sip + ">\r\nCall-ID: loopreg\r\n" +
		"CSeq: 1 REGISTER\r\nContact: <sip:loop@" + p.sip + ">\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n"
	u.send(reg)
	wantCode(t, u.final("REGISTER", 1), 200)
	d := u.call()
	d.ruri = "sip:loop@" + p.sip
	wantCode(t, d.invite(nil, offer), 482)
}

// TestProxySerialByQ: bob's q=1.0 phone is busy, so his q=0.5 phone rings
// next and answers (RFC 3261 §16.6: serial between q groups); and with
// --fork-group-timeout a q=1.0 phone that only rings is CANCELled for the next.
func TestProxySerialByQ(t *testing.T) {
	for _, first := range []string{"uas-busy.xml", "uas-ring.xml"} {
		t.Run(first, func(t *testing.T) {
			const group = 1 * time.Second
			p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--fork-group-timeout", group.String())
			preferred, a := sippUAS(t, first, group+5*time.Second)
			next, b := sippUAS(t, "proxy-uas.xml", 0)
			reg := newUAC(t, "udp", p.sip)
			res := reg.register("bob", "reg-serial-"+first, 1, "Contact: <sip:bob@"+a+">;q=1.0, <sip:bob@"+b+">;q=0.5", "Expires: 300")
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER: %d", res.StatusCode)
			}
			sipp(t, "testdata/proxy-uac.xml", "u1", p.sip, 1, 1, "-s", "bob").mustPass(t, 1)
			passed(t, preferred, "the q=1.0 phone")
			passed(t, next, "the q=0.5 phone")
		})
	}
}

// TestProxyMessage: a MESSAGE for a registered user reaches that user and
// its 200 comes back (every method but REGISTER and OPTIONS is proxied).
func TestProxyMessage(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	sink, addr := sippUAS(t, "uas-message.xml", 0)
	reg := newUAC(t, "udp", p.sip)
	if res := reg.register("erin", "reg-msg-1", 1, "Contact: <sip:erin@"+addr+">", "Expires: 300"); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	d := newUA(t, p.sip).call()
	d.ruri = "sip:erin@example.com"
	wantCode(t, d.do("MESSAGE", []string{"Content-Type: text/plain"}, "hello erin"), 200)
	passed(t, sink, "erin")
}

// TestProxyTCPCallee: a callee registered over TCP is reached over its own
// connection (the edge's flow), INVITE and then the ACK along the route set.
func TestProxyTCPCallee(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	callee := newTCPUA(t, p.sip)
	registerOverTCP(t, callee, p.sip, "dave")

	caller := newUA(t, p.sip)
	d := caller.call()
	d.ruri = "sip:dave@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	caller.send(raw)
	inv := callee.request("INVITE", 10*time.Second) // on the connection it registered over
	// The caller came over UDP, the callee is reached over TCP: the Record-Route
	// is doubled (RFC 5658), the callee's side on top with transport=tcp.
	rrs := inv.GetHeaders("Record-Route")
	if len(rrs) != 2 || !strings.Contains(rrs[0].Value(), "transport=tcp") || strings.Contains(rrs[1].Value(), "transport") ||
		!strings.Contains(rrs[0].Value(), ";lr") || !strings.Contains(rrs[1].Value(), ";lr") {
		t.Fatalf("INVITE at the callee without the doubled Record-Route (tcp on top, then udp):\n%s", inv)
	}
	rr := rrs[0].Value() + ", " + rrs[1].Value()
	callee.answer(inv, 200, "OK", "dave1", []string{"Record-Route: " + rr}, offerWith("1", "0", ""))
	res := caller.final("INVITE", cseq)
	wantCode(t, res, 200)
	// The ACK to the callee's Contact, along the route set: the Record-Route reversed.
	d.toTag, d.ruri = "dave1", res.Contact().Address.String()
	ack, _ := d.req("ACK", []string{"Route: " + rrs[1].Value() + ", " + rrs[0].Value()}, "") // an ACK keeps the INVITE's CSeq
	caller.send(ack)
	callee.request("ACK", 10*time.Second)

	// The callee hangs up: its BYE follows the route set back through the
	// proxy to the caller's Contact.
	bye := "BYE " + inv.Contact().Address.String() + " SIP/2.0\r\nVia: SIP/2.0/TCP " + callee.addr + ";branch=z9hG4bKdavebye\r\n" +
		"Route: " + rr + "\r\nMax-Forwards: 70\r\nFrom: " + inv.To().Value() + ";tag=dave1\r\nTo: " + inv.From().Value() + "\r\n" +
		"Call-ID: " + inv.CallID().Value() + "\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
	callee.send(bye)
	got := caller.request("BYE", 10*time.Second)
	caller.answer(got, 200, "OK", "", nil, "")
	wantCode(t, callee.final("BYE", 1), 200)
}

// TestProxyPath: a binding registered with Path (RFC 3327) is reached through
// that path: the INVITE goes to the Path's first hop, Route naming it and the
// Request-URI the registered contact.
func TestProxyPath(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	hop := newUA(t, p.sip) // plays the edge proxy the phone registered through
	reg := newUAC(t, "udp", p.sip)
	res := reg.register("frank", "reg-path-1", 1, "Contact: <sip:frank@192.0.2.44:5060>", "Expires: 300",
		"Path: <sip:"+hop.addr+";lr>", "Supported: path")
	wantCode(t, res, 200)
	d := newUA(t, p.sip).call()
	d.ruri = "sip:frank@example.com"
	raw, _ := d.req("INVITE", nil, offer)
	d.u.send(raw)
	inv := hop.request("INVITE", 10*time.Second)
	if inv.Recipient.String() != "sip:frank@192.0.2.44:5060" {
		t.Fatalf("Request-URI %s, want the registered contact", inv.Recipient.String())
	}
	if r := inv.GetHeader("Route"); r == nil || !strings.Contains(r.Value(), hop.addr) {
		t.Fatalf("Route %v, want the Path's hop %s", r, hop.addr)
	}
}

// registerBindings registers contacts for user at the proxy's registrar.
func registerBindings(t *testing.T, p *proc, user string, contacts ...string) {
	t.Helper()
	reg := newUAC(t, "udp", p.sip)
	res := reg.register(user, "reg-"+user+"-"+t.Name(), 1, "Contact: "+strings.Join(contacts, ", "), "Expires: 300")
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != len(contacts) {
		t.Fatalf("REGISTER of %d contacts for %s: %d\n%s", len(contacts), user, res.StatusCode, res)
	}
}

// registerOverTCP binds user@example.com to the TCP UA u's connection to server.
func registerOverTCP(t *testing.T, u *ua, server, user string) {
	t.Helper()
	u.send("REGISTER sip:" + server + ";transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP " + u.addr + ";branch=z9hG4bKtcpreg" + user + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.com>;tag=r1\r\nTo: <sip:" + user + "@example.com>\r\nCall-ID: tcpreg-" + user + "\r\n" +
		"CSeq: 1 REGISTER\r\nContact: <" + u.uri(user, u.addr) + ">\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n")
	wantCode(t, u.final("REGISTER", 1), 200)
}

// TestProxyDecline: bob's first phone rings, his second declines with 603:
// the ringing branch is CANCELled (RFC 3261 §16.7 step 5 and 10) and the 603
// reaches the caller once that branch is done (step 6: a 6xx wins).
func TestProxyDecline(t *testing.T) {
	url := testutil.NATSServer(t).URL
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--nats", url)
	routed := make(chan *nats.Msg, 4)
	if _, err := testutil.Conn(t, url).ChanSubscribe(wire.Event(wire.RoleProxy, wire.EventCallRouted), routed); err != nil {
		t.Fatal(err)
	}
	ringing, declining := newUA(t, p.sip), newUA(t, p.sip)
	registerBindings(t, p, "bob", "<sip:bob@"+ringing.addr+">", "<sip:bob@"+declining.addr+">")
	caller := newUA(t, p.sip)
	d := caller.call()
	d.ruri = "sip:bob@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	caller.send(raw)

	inv := ringing.request("INVITE", 10*time.Second)
	ringing.answer(inv, 180, "Ringing", "ring1", nil, "")
	caller.response("INVITE", cseq, 180)
	declined := declining.request("INVITE", 10*time.Second)
	declining.answer(declined, 603, "Decline", "dec1", nil, "")
	declining.request("ACK", 10*time.Second) // the edge ACKs the 603, hop by hop

	cancel := ringing.request("CANCEL", 10*time.Second)
	ringing.answer(cancel, 200, "OK", "", nil, "")
	ringing.answer(inv, 487, "Request Terminated", "ring1", nil, "")
	ringing.request("ACK", 10*time.Second)
	wantCode(t, caller.final("INVITE", cseq), 603)

	// call.routed names the binding whose answer went up, and every one tried.
	var ev wire.RouteEvent
	select {
	case m := <-routed:
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no call.routed event")
	}
	if ev.Code != 603 || ev.Contact != "sip:bob@"+declining.addr || len(ev.Tried) != 2 || ev.Method != "INVITE" || ev.Target != "sip:bob@example.com" {
		t.Fatalf("call.routed %+v: want 603 from sip:bob@%s, two tried", ev, declining.addr)
	}
	if n := p.counter(t, "siphon_proxy_forwarded_total", `method="INVITE"`); n != 2 {
		t.Fatalf("siphon_proxy_forwarded_total{INVITE} %v, want 2 (one per branch)", n)
	}
	if n := p.counter(t, "siphon_sip_responses_total", `role="proxy"`, `method="INVITE"`, `code="603"`); n != 1 {
		t.Fatalf("the proxy's 603s upstream: %v, want 1", n)
	}
}

// TestProxyForkedAnswers: both of bob's phones answer the forked INVITE:
// both 2xx reach the caller (§16.7 step 5; kamailio #570), each with its own
// To tag, and each dialog's ACK and the BYE that ends the unwanted one follow
// that dialog's route set to the phone that made it.
func TestProxyForkedAnswers(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	a, b := newUA(t, p.sip), newUA(t, p.sip)
	registerBindings(t, p, "bob", "<sip:bob@"+a.addr+">", "<sip:bob@"+b.addr+">")
	caller := newUA(t, p.sip)
	d := caller.call()
	d.ruri = "sip:bob@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	caller.send(raw)

	phones := map[string]*ua{"phoneA": a, "phoneB": b}
	var rr string
	for tag, phone := range phones {
		inv := phone.request("INVITE", 10*time.Second)
		rr = inv.GetHeader("Record-Route").Value()
		phone.answer(inv, 200, "OK", tag, []string{"Record-Route: " + rr}, offerWith("1", "0", ""))
	}
	for tag, phone := range phones {
		res := caller.await("200 from "+tag, 10*time.Second, func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			got, _ := r.To().Params.Get("tag")
			return ok && r.StatusCode == 200 && r.CSeq().SeqNo == cseq && got == tag
		}).(*sip.Response)
		d.toTag, d.ruri = tag, res.Contact().Address.String()
		ack, _ := d.req("ACK", []string{"Route: " + rr}, "")
		caller.send(ack)
		phone.request("ACK", 10*time.Second)
	}
	// The caller keeps one dialog (phoneA) and ends the other.
	d.toTag, d.ruri = "phoneB", "sip:ua@"+b.addr
	bye, byeSeq := d.req("BYE", []string{"Route: " + rr}, "")
	caller.send(bye)
	got := b.request("BYE", 10*time.Second)
	b.answer(got, 200, "OK", "", nil, "")
	wantCode(t, caller.final("BYE", byeSeq), 200)
}

// TestProxyTimerC: a callee that only rings is CANCELled when --timer-c runs
// out (RFC 3261 §16.8), and the caller gets 408.
func TestProxyTimerC(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--timer-c", "1s")
	callee := newUA(t, p.sip)
	registerBindings(t, p, "bob", "<sip:bob@"+callee.addr+">")
	caller := newUA(t, p.sip)
	d := caller.call()
	d.ruri = "sip:bob@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	caller.send(raw)

	inv := callee.request("INVITE", 10*time.Second)
	callee.answer(inv, 180, "Ringing", "slow1", nil, "")
	caller.response("INVITE", cseq, 180)
	cancel := callee.request("CANCEL", 10*time.Second)
	if r := cancel.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "408") {
		t.Errorf("Timer C's CANCEL without Reason: SIP;cause=408:\n%s", cancel)
	}
	callee.answer(cancel, 200, "OK", "", nil, "")
	callee.answer(inv, 487, "Request Terminated", "slow1", nil, "")
	wantCode(t, caller.final("INVITE", cseq), 408)
	if n := p.counter(t, "siphon_proxy_timer_c_total"); n != 1 {
		t.Fatalf("siphon_proxy_timer_c_total %v, want 1", n)
	}
}

// TestProxyOptions: in proxy mode an OPTIONS for a registered user is that
// user's to answer (forwarded), one for the lab itself the uas's.
func TestProxyOptions(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	phone := newUA(t, p.sip)
	registerBindings(t, p, "gina", "<sip:gina@"+phone.addr+">")
	d := newUA(t, p.sip).call()
	d.ruri = "sip:gina@example.com"
	raw, cseq := d.req("OPTIONS", nil, "")
	d.u.send(raw)
	got := phone.request("OPTIONS", 10*time.Second)
	phone.answer(got, 200, "OK", "gina1", []string{"Allow: INVITE, ACK, BYE", "Server: gina's phone"}, "")
	res := d.u.final("OPTIONS", cseq)
	wantCode(t, res, 200)
	if s := res.GetHeader("Server"); s == nil || s.Value() != "gina's phone" {
		t.Fatalf("OPTIONS for gina answered by someone else:\n%s", res)
	}
	d.ruri = "sip:" + p.sip
	res = d.do("OPTIONS", nil, "")
	wantCode(t, res, 200)
	if a := res.GetHeader("Allow"); a == nil || !strings.Contains(a.Value(), "REGISTER") {
		t.Fatalf("OPTIONS for the lab not answered by the lab:\n%s", res)
	}
}

// TestProxyAuth: with --auth, alice's INVITE gets 407 and SIPp passes it with
// her credentials; the call goes through (RFC 3261 §22.3). Credentials for
// another user than the From are refused.
func TestProxyAuth(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--auth")
	callee, addr := sippUAS(t, "proxy-uas.xml", 0)
	reg := newUAC(t, "udp", p.sip)
	contact := "Contact: <sip:bob@" + addr + ">"
	res := reg.register("bob", "reg-auth-1", 1, contact, "Expires: 300")
	wantCode(t, res, 401)
	res = reg.register("bob", "reg-auth-1", 2, contact, "Expires: 300",
		authorization(t, challenge(t, res, "MD5"), "bob", "pass456", "sip:"+p.sip, 1))
	wantCode(t, res, 200)

	sipp(t, "testdata/proxy-uac-auth.xml", "u1", p.sip, 1, 1, "-s", "bob").mustPass(t, 1)
	passed(t, callee, "callee")

	t.Run("another user's credentials", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		d.ruri = "sip:bob@example.com"
		// From one of our users: the UA's own From is not in our domain.
		asAlice := func(raw string) string {
			return strings.Replace(raw, "From: <sip:caller@"+u.addr+">", "From: <sip:alice@example.com>", 1)
		}
		raw, cseq := d.req("INVITE", nil, offer)
		u.send(asAlice(raw))
		res := u.final("INVITE", cseq)
		wantCode(t, res, 407)
		var chal *digest.Challenge
		for _, h := range res.GetHeaders("Proxy-Authenticate") {
			if c, err := digest.ParseChallenge(h.Value()); err == nil && c.Algorithm == "MD5" {
				chal = c
			}
		}
		if chal == nil || res.GetHeader("WWW-Authenticate") != nil {
			t.Fatalf("407 without an MD5 Proxy-Authenticate:\n%s", res)
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: d.ruri, Username: "bob", Password: "pass456", Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		raw, cseq = d.req("INVITE", []string{"Proxy-Authorization: " + cred.String()}, offer)
		u.send(asAlice(raw))
		wantCode(t, u.final("INVITE", cseq), 403)
	})
}

// TestProxyMaxBreadth: bob has three phones; a request's Max-Breadth is
// shared among the branches that ring at once (RFC 5393 §5.3.2), targets
// beyond it are not tried, and with none left a fork gets 440.
func TestProxyMaxBreadth(t *testing.T) {
	// One parallel group, in q order: the first targets are the preferred ones.
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--fork-mode", "parallel")
	phones := []*ua{newUA(t, p.sip), newUA(t, p.sip), newUA(t, p.sip)}
	registerBindings(t, p, "bob", "<sip:bob@"+phones[0].addr+">;q=1.0", "<sip:bob@"+phones[1].addr+">;q=0.9", "<sip:bob@"+phones[2].addr+">;q=0.8")
	d := newUA(t, p.sip).call()
	d.ruri = "sip:bob@example.com"
	message := func(breadth string) uint32 {
		hdrs := []string{"Content-Type: text/plain"}
		if breadth != "" && !strings.Contains(breadth, ":") {
			breadth = "Max-Breadth: " + breadth
		}
		if breadth != "" {
			hdrs = append(hdrs, breadth)
		}
		raw, cseq := d.req("MESSAGE", hdrs, "hi")
		d.u.send(raw)
		return cseq
	}
	// got is MESSAGE cseq at ph (not a retransmission of an earlier one).
	got := func(ph *ua, cseq uint32) *sip.Request {
		return ph.await("MESSAGE "+strconv.Itoa(int(cseq)), 10*time.Second, func(m sip.Message) bool {
			r, ok := m.(*sip.Request)
			return ok && r.Method == sip.MESSAGE && r.CSeq().SeqNo == cseq
		}).(*sip.Request)
	}
	for _, tt := range []struct {
		breadth, each string
		tried         int
	}{
		{"", "20", 3},              // none given: 60 (RFC 5393 §5.3.1) shared by 3
		{"2", "1", 2},              // two targets only, 1 each
		{"7", "3", 3},              // 7 over 3: 3, 2, 2
		{"max-breadth: 2", "1", 2}, // any case, and replaced, not added to
	} {
		cseq := message(tt.breadth)
		for i, ph := range phones[:tt.tried] {
			m := got(ph, cseq)
			want := tt.each
			if tt.breadth == "7" && i > 0 {
				want = "2"
			}
			if hs := m.GetHeaders("Max-Breadth"); len(hs) != 1 || hs[0].Value() != want {
				t.Fatalf("Max-Breadth %q, branch %d: %v, want one of %s", tt.breadth, i, hs, want)
			}
			ph.answer(m, 486, "Busy Here", "b", nil, "")
		}
		wantCode(t, d.u.final("MESSAGE", cseq), 486) // a real 486 over a 440 made here
	}
	wantCode(t, d.u.final("MESSAGE", message("0")), 440)
}

// TestProxyStrictRouter: a request from a strict router (RFC 2543) carries
// our Record-Route as its Request-URI and the real target as its last Route
// (RFC 3261 §16.4): it is forwarded to that target.
func TestProxyStrictRouter(t *testing.T) {
	p := start(t, true, "--mode", "proxy", "--domain", "example.com")
	callee := newUA(t, p.sip)
	caller := newUA(t, p.sip)
	d := caller.call()
	d.toTag, d.ruri = "peer1", "sip:"+p.sip+";lr" // our Record-Route, as a strict router puts it
	bye, cseq := d.req("BYE", []string{"Route: <sip:ua@" + callee.addr + ">"}, "")
	caller.send(bye)
	got := callee.request("BYE", 10*time.Second)
	if got.Recipient.String() != "sip:ua@"+callee.addr || got.GetHeader("Route") != nil {
		t.Fatalf("BYE at the target: Request-URI %s, Route %v; want sip:ua@%s and no Route", got.Recipient.String(), got.GetHeader("Route"), callee.addr)
	}
	callee.answer(got, 200, "OK", "", nil, "")
	wantCode(t, caller.final("BYE", cseq), 200)
}

// TestProxyForeignDomain: with --foreign-domains forward a request for
// another domain goes where RFC 3263 says — NAPTR, SRV, A from the
// --dns-server — with its Request-URI kept; a server answering 503 is passed
// over for the next SRV target (§4.3).
func TestProxyForeignDomain(t *testing.T) {
	zone := sipdnstest.Server(t)
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--foreign-domains", "forward", "--dns-server", zone.Addr)
	busy, next := newUA(t, p.sip), newUA(t, p.sip)
	_, busyPort, _ := net.SplitHostPort(busy.addr)
	_, nextPort, _ := net.SplitHostPort(next.addr)
	zone.Add(t,
		`voip.test. 60 IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.voip.test.`,
		`_sip._udp.voip.test. 60 IN SRV 10 0 `+busyPort+` a.voip.test.`,
		`_sip._udp.voip.test. 60 IN SRV 20 0 `+nextPort+` a.voip.test.`,
		`a.voip.test. 60 IN A 127.0.0.1`,
	)
	d := newUA(t, p.sip).call()
	d.ruri = "sip:carol@voip.test"
	raw, cseq := d.req("MESSAGE", []string{"Content-Type: text/plain"}, "hello carol")
	d.u.send(raw)
	m := busy.request("MESSAGE", 10*time.Second)
	if m.Recipient.String() != "sip:carol@voip.test" {
		t.Fatalf("Request-URI at the first server: %s, want it kept", m.Recipient.String())
	}
	busy.answer(m, 503, "Service Unavailable", "s1", nil, "")
	m = next.request("MESSAGE", 10*time.Second)
	next.answer(m, 200, "OK", "s2", nil, "")
	wantCode(t, d.u.final("MESSAGE", cseq), 200)

	d.ruri = "sip:carol@nowhere.test"
	wantCode(t, d.do("MESSAGE", []string{"Content-Type: text/plain"}, "hi"), 404)

	// With --auth a request for a foreign domain is challenged whatever its
	// From says: no open relay.
	guarded := start(t, true, "--mode", "proxy", "--domain", "example.com", "--foreign-domains", "forward", "--dns-server", zone.Addr, "--auth")
	g := newUA(t, guarded.sip).call()
	g.ruri = "sip:carol@voip.test"
	wantCode(t, g.do("MESSAGE", []string{"Content-Type: text/plain"}, "relay me"), 407)
}

// TestProxyTwoEdges: the caller comes in over UDP at edge A, the callee is
// registered over TCP at edge B. The call is forwarded over B's connection;
// when the callee retransmits its 200 (its ACK lost), the retransmission goes
// upstream through edge A (Siphon-Upstream), from the address the caller sent
// to: a caller behind NAT takes nothing from elsewhere (RFC 6026 §7.2).
func TestProxyTwoEdges(t *testing.T) {
	url, redis := testutil.NATSServer(t).URL, testutil.Redis(t)
	shared := []string{"--mode", "proxy", "--domain", "example.com", "--nats", url, "--redis", redis}
	start(t, false, append(shared, "--role", "registrar,proxy")...)
	edgeA := start(t, true, append(shared, "--role", "edge", "--edge-id", "edge-a")...)
	edgeB := start(t, true, append(shared, "--role", "edge", "--edge-id", "edge-b")...)

	callee := newTCPUA(t, edgeB.sip)
	registerOverTCP(t, callee, edgeB.sip, "hana")

	caller := newUA(t, edgeA.sip)
	d := caller.call()
	d.ruri = "sip:hana@example.com"
	raw, cseq := d.req("INVITE", nil, offer)
	caller.send(raw)
	inv := callee.request("INVITE", 10*time.Second)
	rr := []string{}
	for _, h := range inv.GetHeaders("Record-Route") {
		rr = append(rr, h.Value())
	}
	ok200 := func() {
		callee.answer(inv, 200, "OK", "hana1", []string{"Record-Route: " + strings.Join(rr, ", ")}, offerWith("1", "0", ""))
	}
	ok200()
	first := caller.response("INVITE", cseq, 200)
	if first.Source() != edgeA.sip {
		t.Fatalf("the 200 came from %s, want edge A %s", first.Source(), edgeA.sip)
	}
	// The caller's ACK stops edge A's own retransmissions of the 200; the
	// callee, as if the ACK never reached it, sends its 200 again.
	d.toTag, d.ruri = "hana1", first.Contact().Address.String()
	ack, _ := d.req("ACK", []string{"Route: " + rr[len(rr)-1]}, "")
	caller.send(ack)
	ok200()
	again := caller.response("INVITE", cseq, 200)
	if again.Source() != edgeA.sip {
		t.Fatalf("the retransmitted 200 came from %s, want edge A %s (the edge the caller sent to)", again.Source(), edgeA.sip)
	}
}
