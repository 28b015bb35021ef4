package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The call tests drive a running siphond in full-uas or call-server mode: SIPp
// for the flows SIPp users run, and a scripted UA (ua_test.go) where the test
// must play the far end too. Events are read from the NATS server the siphond
// under test uses.

const offer = "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"

// offerWith is offer with the audio line's codecs and an attribute changed.
func offerWith(version, formats, attr string) string {
	s := strings.Replace(offer, "o=caller 1 1", "o=caller 1 "+version, 1)
	s = strings.Replace(s, "RTP/AVP 0 8 101", "RTP/AVP "+formats, 1)
	if attr != "" {
		s += "a=" + attr + "\r\n"
	}
	return s
}

func body(m sip.Message) string {
	switch v := m.(type) {
	case *sip.Response:
		return string(v.Body())
	case *sip.Request:
		return string(v.Body())
	}
	return ""
}

func wantCode(t *testing.T, res *sip.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("got %d, want %d:\n%s", res.StatusCode, code, res)
	}
}

func wantBody(t *testing.T, m sip.Message, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body(m), p) {
			t.Fatalf("body lacks %q:\n%s", p, body(m))
		}
	}
}

// uasLab is one siphond on its own NATS server, with its events watched.
func uasLab(t *testing.T, args ...string) (*proc, *roleEvents) {
	t.Helper()
	url := testutil.NATSServer(t).URL
	p := start(t, true, append([]string{"--mode", "full-uas", "--nats", url}, args...)...)
	return p, watchRole(t, url, wire.RoleUAS)
}

func TestCallsWithSIPp(t *testing.T) {
	p := start(t, true, "--mode", "call-server")
	for _, transport := range []string{"u1", "t1"} {
		sipp(t, "testdata/call-basic.xml", transport, p.sip, 20, 20).mustPass(t, 20)
	}
	if n := p.counter(t, "siphon_sip_responses_total", "role", "uas", "method", "BYE", "code", "200"); n != 40 {
		t.Fatalf("uas answered %v BYEs with 200, want 40", n)
	}
}

// TestPRACKWithSIPp: SIPp requires 100rel, reads RSeq from the 180 and PRACKs
// it; the 200 follows.
func TestPRACKWithSIPp(t *testing.T) {
	p := start(t, true, "--mode", "call-server")
	sipp(t, "testdata/call-prack.xml", "u1", p.sip, 10, 10).mustPass(t, 10)
	if n := p.counter(t, "siphon_sip_responses_total", "role", "uas", "method", "PRACK", "code", "200"); n != 10 {
		t.Fatalf("uas answered %v PRACKs with 200, want 10", n)
	}
}

func TestCallFlows(t *testing.T) {
	p, ev := uasLab(t, "--allow-private-refer-targets")

	t.Run("basic call, hold and resume", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		res := d.established(nil, offer)
		wantBody(t, res, "m=audio 40000 RTP/AVP 0 8 101", "a=sendrecv", "o=siphon ")
		ev.await(wire.EventCallStarted, d.callID)
		res = d.invite(nil, offerWith("2", "0 8 101", "sendonly"))
		wantCode(t, res, 200)
		d.ack(res.CSeq().SeqNo, "")
		wantBody(t, res, "a=recvonly", " 2 IN IP4 ")
		res = d.invite(nil, offerWith("3", "0 8 101", ""))
		wantCode(t, res, 200)
		d.ack(res.CSeq().SeqNo, "")
		wantBody(t, res, "a=sendrecv", " 3 IN IP4 ")
		// Codec change: PCMA only.
		res = d.invite(nil, offerWith("4", "8", ""))
		wantCode(t, res, 200)
		d.ack(res.CSeq().SeqNo, "")
		wantBody(t, res, "RTP/AVP 8\r\n", " 4 IN IP4 ")
		wantCode(t, d.do("BYE", nil, ""), 200)
		ev.await(wire.EventCallEnded, d.callID)
		wantCode(t, d.do("BYE", nil, ""), 481)
	})

	t.Run("2xx retransmitted until ACK", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		res := d.invite(nil, offer)
		wantCode(t, res, 200)
		again := u.response("INVITE", res.CSeq().SeqNo, 200) // T1 later, no ACK yet
		if tag, _ := again.To().Params.Get("tag"); tag != d.toTag {
			t.Fatalf("retransmitted 200 has tag %q, want %q", tag, d.toTag)
		}
		d.ack(res.CSeq().SeqNo, "")
		u.quiet(t, 2500*time.Millisecond) // the next retransmission was due within 2 s
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("early media when asked for", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		raw, cseq := d.req("INVITE", []string{"P-Early-Media: supported"}, offer)
		u.send(raw)
		early := u.response("INVITE", cseq, 183)
		wantBody(t, early, "m=audio 40000 RTP/AVP 0 8 101")
		if h := early.GetHeader("P-Early-Media"); h == nil || h.Value() != "sendrecv" {
			t.Fatalf("183 without P-Early-Media: sendrecv:\n%s", early)
		}
		res := u.final("INVITE", cseq)
		wantCode(t, res, 200)
		if body(res) != body(early) {
			t.Fatalf("200 answer differs from the 183's:\n%s\n%s", body(early), body(res))
		}
		d.toTag, _ = res.To().Params.Get("tag")
		d.ack(cseq, "")
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("late offer", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		res := d.invite(nil, "")
		wantCode(t, res, 200)
		wantBody(t, res, "m=audio", "a=rtpmap:0 PCMU/8000")
		d.ack(res.CSeq().SeqNo, offerWith("1", "0", "")) // the answer
		got := ev.await(wire.EventCallAnswered, d.callID)
		if !strings.Contains(got.Body, "RTP/AVP 0") {
			t.Fatalf("answer in the ACK not taken: %+v", got)
		}
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("no common codec", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		res := d.invite(nil, offerWith("1", "18", "rtpmap:18 G729/8000"))
		wantCode(t, res, 488)
		if w := res.GetHeader("Warning"); w == nil || !strings.HasPrefix(w.Value(), "305 ") {
			t.Fatalf("488 without Warning 305: %v", w)
		}
	})

	t.Run("malformed SDP", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		wantCode(t, d.invite(nil, "v=0\r\nm=broken\r\n"), 400)
	})

	t.Run("unknown dialog", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		d.toTag = "no-such-tag"
		for _, m := range []string{"BYE", "INFO", "UPDATE", "PRACK", "INVITE"} {
			hdrs := []string(nil)
			if m == "PRACK" {
				hdrs = []string{"RAck: 1 1 INVITE"}
			}
			if res := d.do(m, hdrs, ""); res.StatusCode != 481 {
				t.Errorf("%s in an unknown dialog: %d, want 481", m, res.StatusCode)
			}
		}
	})

	t.Run("UPDATE, INFO and MESSAGE", func(t *testing.T) {
		d := newUA(t, p.sip).call()
		d.established(nil, offer)
		res := d.do("UPDATE", nil, offerWith("2", "0 101", "sendonly"))
		wantCode(t, res, 200)
		wantBody(t, res, "a=recvonly", "RTP/AVP 0 101")
		res = d.do("INFO", []string{"Info-Package: dtmf", "Content-Type: application/dtmf-relay"}, "Signal=5\r\nDuration=160\r\n")
		wantCode(t, res, 200)
		info := ev.await(wire.EventInfoReceived, d.callID)
		if info.Body != "Signal=5\r\nDuration=160\r\n" || info.ContentType != "application/dtmf-relay" || info.InfoPackage != "dtmf" {
			t.Fatalf("info.received: %+v", info)
		}
		wantCode(t, d.do("MESSAGE", []string{"Content-Type: text/plain"}, "in the call"), 200)
		if got := ev.await(wire.EventMessageReceived, d.callID); got.Body != "in the call" {
			t.Fatalf("message.received: %+v", got)
		}
		out := newUA(t, p.sip).call()
		wantCode(t, out.do("MESSAGE", []string{"Content-Type: text/plain"}, "outside any dialog"), 200)
		if got := ev.await(wire.EventMessageReceived, out.callID); got.Body != "outside any dialog" || got.ContentType != "text/plain" {
			t.Fatalf("message.received: %+v", got)
		}
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("PRACK", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		raw, cseq := d.req("INVITE", []string{"Supported: 100rel"}, offer)
		u.send(raw)
		first := u.response("INVITE", cseq, 180)
		if first.GetHeader("Require") == nil || first.GetHeader("Require").Value() != "100rel" || first.GetHeader("RSeq") == nil {
			t.Fatalf("180 is not reliable:\n%s", first)
		}
		rseq := first.GetHeader("RSeq").Value()
		d.toTag, _ = first.To().Params.Get("tag")
		// Unacknowledged, it comes again (T1 later over UDP).
		if again := u.response("INVITE", cseq, 180); again.GetHeader("RSeq").Value() != rseq {
			t.Fatalf("retransmitted 180 has RSeq %s, want %s", again.GetHeader("RSeq").Value(), rseq)
		}
		wantCode(t, d.do("PRACK", []string{"RAck: 999 1 INVITE"}, ""), 481)
		wantCode(t, d.do("PRACK", []string{"RAck: " + rseq + " 1 INVITE"}, ""), 200)
		res := u.final("INVITE", cseq)
		wantCode(t, res, 200)
		d.ack(cseq, "")
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("blind transfer", func(t *testing.T) {
		a := newUA(t, p.sip)
		carol := newUA(t, p.sip)
		d := a.call()
		d.established(nil, offer)
		res := d.do("REFER", []string{"Refer-To: <sip:carol@" + carol.addr + ">", "Referred-By: <sip:caller@" + a.addr + ">"}, "")
		wantCode(t, res, 202)
		inv := carol.request("INVITE", 10*time.Second)
		if inv.GetHeader("Referred-By") == nil || !strings.Contains(string(inv.Body()), "m=audio") {
			t.Fatalf("transfer INVITE lacks Referred-By or an offer:\n%s", inv)
		}
		notify := func(frag string, last bool) {
			t.Helper()
			n := a.request("NOTIFY", 10*time.Second)
			a.answer(n, 200, "OK", "", nil, "")
			state := n.GetHeader("Subscription-State").Value()
			if !strings.HasPrefix(string(n.Body()), frag) || n.GetHeader("Event").Value() != "refer;id=2" ||
				!strings.HasPrefix(n.GetHeader("Content-Type").Value(), "message/sipfrag") {
				t.Fatalf("NOTIFY: want %q, got\n%s", frag, n)
			}
			if last != strings.HasPrefix(state, "terminated") {
				t.Fatalf("NOTIFY %q with Subscription-State %q", frag, state)
			}
		}
		notify("SIP/2.0 100 Trying", false)
		carol.answer(inv, 180, "Ringing", "carol1", nil, "")
		notify("SIP/2.0 180 Ringing", false)
		carol.answer(inv, 200, "OK", "carol1", nil, offerWith("1", "0", ""))
		carol.request("ACK", 10*time.Second)
		notify("SIP/2.0 200 OK", true)
		// The transfer call is a dialog like any other: carol hangs up.
		bye := "BYE sip:siphon@" + p.sip + " SIP/2.0\r\nVia: SIP/2.0/UDP " + carol.addr + ";branch=z9hG4bKcarolbye;rport\r\n" +
			"Max-Forwards: 70\r\nFrom: " + inv.To().Value() + ";tag=carol1\r\nTo: " + inv.From().Value() + "\r\n" +
			"Call-ID: " + inv.CallID().Value() + "\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
		carol.send(bye)
		wantCode(t, carol.final("BYE", 1), 200)
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("attended transfer: REFER carrying Replaces", func(t *testing.T) {
		a, carol := newUA(t, p.sip), newUA(t, p.sip)
		d := a.call()
		d.established(nil, offer)
		// The transferor holds a consultation call with carol; the uas is to take it over.
		referTo := "Refer-To: <sip:carol@" + carol.addr + "?Replaces=consult-1%40test%3Bto-tag%3Dcarol7%3Bfrom-tag%3Dxfer3>"
		wantCode(t, d.do("REFER", []string{referTo}, ""), 202)
		inv := carol.request("INVITE", 10*time.Second)
		if h := inv.GetHeader("Replaces"); h == nil || h.Value() != "consult-1@test;to-tag=carol7;from-tag=xfer3" {
			t.Fatalf("transfer INVITE Replaces: %v\n%s", h, inv)
		}
		carol.answer(inv, 200, "OK", "carol2", nil, offerWith("1", "0", ""))
		carol.request("ACK", 10*time.Second)
		for _, frag := range []string{"SIP/2.0 100 Trying", "SIP/2.0 200 OK"} {
			n := a.request("NOTIFY", 10*time.Second)
			a.answer(n, 200, "OK", "", nil, "")
			if !strings.HasPrefix(string(n.Body()), frag) {
				t.Fatalf("NOTIFY: want %q, got\n%s", frag, n)
			}
		}
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("attended transfer with Replaces", func(t *testing.T) {
		a, b := newUA(t, p.sip), newUA(t, p.sip)
		first := a.call()
		first.established(nil, offer)
		second := b.call()
		replaces := "Replaces: " + first.callID + ";to-tag=" + first.toTag + ";from-tag=" + first.fromTag
		second.established([]string{replaces}, offer)
		bye := a.request("BYE", 10*time.Second)
		a.answer(bye, 200, "OK", "", nil, "")
		if bye.CallID().Value() != first.callID {
			t.Fatalf("BYE for %s, want the replaced call %s", bye.CallID().Value(), first.callID)
		}
		ev.await(wire.EventCallReplaced, first.callID)
		wantCode(t, first.do("BYE", nil, ""), 481)
		wantCode(t, second.do("BYE", nil, ""), 200)
		// A Replaces naming no dialog is refused.
		third := b.call()
		wantCode(t, third.invite([]string{replaces}, offer), 481)
	})
}

func TestCallRefusals(t *testing.T) {
	t.Run("auto-accept off", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas", "--auto-accept-calls=false")
		wantCode(t, newUA(t, p.sip).call().invite(nil, offer), 486)
	})
	t.Run("100rel required, PRACK off", func(t *testing.T) {
		p := start(t, true, "--mode", "call-server", "--enable-prack=false")
		res := newUA(t, p.sip).call().invite([]string{"Require: 100rel"}, offer)
		wantCode(t, res, 420)
		if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "100rel" {
			t.Fatalf("420 without Unsupported: 100rel:\n%s", res)
		}
	})
	t.Run("private REFER target", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		d := newUA(t, p.sip).call()
		d.established(nil, offer)
		wantCode(t, d.do("REFER", []string{"Refer-To: <sip:carol@127.0.0.1:5999>"}, ""), 403)
	})
}

func TestSessionTimers(t *testing.T) {
	p, ev := uasLab(t, "--enable-session-timers", "--min-se", "2", "--session-expires", "1800")

	t.Run("too small", func(t *testing.T) {
		res := newUA(t, p.sip).call().invite([]string{"Supported: timer", "Session-Expires: 1"}, offer)
		wantCode(t, res, 422)
		if h := res.GetHeader("Min-SE"); h == nil || h.Value() != "2" {
			t.Fatalf("422 without Min-SE: 2:\n%s", res)
		}
	})

	t.Run("uas refreshes", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		res := d.established([]string{"Supported: timer", "Session-Expires: 4;refresher=uas"}, offer)
		if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "4;refresher=uas" {
			t.Fatalf("200 Session-Expires: %v", h)
		}
		for range 2 { // refreshed at half the interval, again and again
			reinv := u.request("INVITE", 5*time.Second)
			u.answer(reinv, 200, "OK", "", []string{"Session-Expires: 4;refresher=uas", "Require: timer"}, offer)
			u.request("ACK", 5*time.Second)
			ev.await(wire.EventSessionRefreshed, d.callID)
		}
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("uas refreshes with UPDATE when allowed", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		d.established([]string{"Allow: INVITE, ACK, BYE, CANCEL, UPDATE", "Supported: timer", "Session-Expires: 4;refresher=uas"}, offer)
		upd := u.request("UPDATE", 5*time.Second)
		if len(upd.Body()) != 0 || upd.GetHeader("Session-Expires").Value() != "4;refresher=uas" {
			t.Fatalf("refresh UPDATE:\n%s", upd)
		}
		u.answer(upd, 200, "OK", "", []string{"Session-Expires: 4;refresher=uas", "Require: timer"}, "")
		ev.await(wire.EventSessionRefreshed, d.callID)
		wantCode(t, d.do("BYE", nil, ""), 200)
	})

	t.Run("session expires", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		res := d.established([]string{"Supported: timer", "Session-Expires: 3"}, offer)
		if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "3;refresher=uac" || res.GetHeader("Require") == nil {
			t.Fatalf("200 Session-Expires %v, Require %v: want 3;refresher=uac and Require: timer", h, res.GetHeader("Require"))
		}
		started := time.Now()
		bye := u.request("BYE", 10*time.Second) // no refresh from this side
		u.answer(bye, 200, "OK", "", nil, "")
		ev.await(wire.EventSessionExpired, d.callID)
		if waited := time.Since(started); waited > 4*time.Second {
			t.Fatalf("session of 3 s ended after %v", waited)
		}
	})

	t.Run("over TCP the refresh and the BYE come back on the caller's connection", func(t *testing.T) {
		u := newTCPUA(t, p.sip)
		d := u.call()
		d.established([]string{"Supported: timer", "Session-Expires: 3;refresher=uas"}, offer)
		reinv := u.request("INVITE", 5*time.Second)
		u.answer(reinv, 200, "OK", "", []string{"Session-Expires: 3;refresher=uas"}, offer)
		u.request("ACK", 5*time.Second)
		ev.await(wire.EventSessionRefreshed, d.callID)
		// Now the caller refreshes, then stops: the uas ends the session.
		wantCode(t, d.do("UPDATE", []string{"Supported: timer", "Session-Expires: 3;refresher=uac"}, ""), 200)
		bye := u.request("BYE", 10*time.Second)
		u.answer(bye, 200, "OK", "", nil, "")
		ev.await(wire.EventSessionExpired, d.callID)
	})

	t.Run("UAC refresh keeps the session", func(t *testing.T) {
		u := newUA(t, p.sip)
		d := u.call()
		d.established([]string{"Supported: timer", "Session-Expires: 3;refresher=uac"}, offer)
		for range 3 {
			time.Sleep(time.Second) // the UAC's own refresh schedule, not synchronisation
			res := d.do("UPDATE", []string{"Supported: timer", "Session-Expires: 3;refresher=uac"}, "")
			wantCode(t, res, 200)
		}
		wantCode(t, d.do("BYE", nil, ""), 200) // still up after 3 s > interval - margin
	})
}

func TestSDPFileProfile(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "pcma.sdp")
	sdp := "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	if err := os.WriteFile(profile, []byte(sdp), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, true, "--mode", "call-server", "--sdp-profile", profile)
	d := newUA(t, p.sip).call()
	res := d.established(nil, offer)
	wantBody(t, res, "m=audio 40000 RTP/AVP 8 101\r\n")
	if strings.Contains(body(res), "PCMU") {
		t.Fatalf("answer has PCMU, which the profile lacks:\n%s", body(res))
	}
	wantCode(t, d.do("BYE", nil, ""), 200)
	wantCode(t, newUA(t, p.sip).call().invite(nil, offerWith("1", "0", "")), 488)
}

// TestDialogExpiry: a call whose BYE never comes is forgotten after
// --dialog-expiry without a request, and announced.
func TestDialogExpiry(t *testing.T) {
	p, ev := uasLab(t, "--dialog-expiry", "2s")
	d := newUA(t, p.sip).call()
	started := time.Now()
	d.established(nil, offer)
	ev.await(wire.EventDialogExpired, d.callID)
	if waited := time.Since(started); waited < 2*time.Second {
		t.Fatalf("dialog forgotten after %v, before --dialog-expiry 2s", waited)
	}
	wantCode(t, d.do("BYE", nil, ""), 481)
}

// TestByeOnAnotherReplica: dialogs live in Redis, so the BYE of a call the
// first uas replica answered is served by a second one after the first died.
func TestByeOnAnotherReplica(t *testing.T) {
	redisURL := testutil.Redis(t)
	nats := testutil.NATSServer(t)
	natsURL := nats.URL
	common := []string{"--mode", "full-uas", "--nats", natsURL, "--redis", redisURL}
	edge := start(t, true, append(common, "--role", "edge")...)
	ev := watchRole(t, natsURL, wire.RoleUAS)
	first := start(t, false, append(common, "--role", "uas")...)

	d := newUA(t, edge.sip).call()
	d.established(nil, offer)
	answeredBy := ev.await(wire.EventCallStarted, d.callID).Replica

	start(t, false, append(common, "--role", "uas")...)
	first.stop(syscall.SIGKILL)
	// Until nats-server has seen the killed replica's connection close, its
	// queue subscription may still be handed the BYE.
	nats.WaitNoSubscriber(t, wire.Replica(wire.RoleUAS, answeredBy), 10*time.Second)
	wantCode(t, d.do("BYE", nil, ""), 200)
	if endedBy := ev.await(wire.EventCallEnded, d.callID).Replica; endedBy == answeredBy {
		t.Fatalf("BYE served by %s, the replica that was killed", endedBy)
	}
}

// TestRingingReplicaGone: the uas replica holding a ringing INVITE is killed;
// the edge sees it gone within --sender-check of its connection closing and
// answers the caller 500 instead of leaving it ringing until Timer C.
func TestRingingReplicaGone(t *testing.T) {
	const check = 500 * time.Millisecond
	nats := testutil.NATSServer(t)
	common := []string{"--mode", "call-server", "--nats", nats.URL}
	edge := start(t, true, append(common, "--role", "edge", "--sender-check", check.String())...)
	uas := start(t, false, append(common, "--role", "uas", "--answer-delay", "60s")...)
	u := newUA(t, edge.sip)
	d := u.call()
	raw, cseq := d.req("INVITE", nil, offer)
	u.send(raw)
	u.response("INVITE", cseq, 180)
	killed := time.Now()
	uas.stop(syscall.SIGKILL)
	res := u.final("INVITE", cseq)
	wantCode(t, res, 500)
	// One --sender-check, and 1.5 s for the kill to close the socket and the
	// 500 to cross loopback on a busy box.
	if waited := time.Since(killed); waited > check+1500*time.Millisecond {
		t.Fatalf("caller answered %v after the uas died, want within --sender-check %v + 1.5 s", waited, check)
	}
}
