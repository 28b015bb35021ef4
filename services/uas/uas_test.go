package uas

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/role/roletest"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
)

const offerPCMU = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"

// message parses a request: method, To tag (empty for none), CSeq, extra header lines and body.
func message(t *testing.T, method, toTag string, cseq int, extra []string, body string) *sip.Request {
	t.Helper()
	to := "<sip:siphond@127.0.0.1>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	raw := method + " sip:siphond@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds" + method + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:test@127.0.0.1>;tag=1928301774\r\nTo: " + to + "\r\n" +
		"Call-ID: a84b4c76e66710@127.0.0.1\r\nCSeq: " + itoa(cseq) + " " + method + "\r\n" +
		"Contact: <sip:test@127.0.0.1:5070>\r\n"
	for _, h := range extra {
		raw += h + "\r\n"
	}
	if body != "" {
		raw += "Content-Type: application/sdp\r\n"
	}
	raw += "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}

func itoa(n int) string { return strconv.Itoa(n) }

func newUAS(t *testing.T, modeName string, cfg Config) *UAS {
	t.Helper()
	u, _, _ := newUASWithClock(t, modeName, cfg)
	return u
}

// newUASWithClock is a uas on a fake clock that sends through a fake send path.
func newUASWithClock(t *testing.T, modeName string, cfg Config) (*UAS, *clockwork.FakeClock, *fakeSender) {
	t.Helper()
	if cfg.SDPProfile == "" {
		cfg.SDPProfile = "audio-only"
	}
	if cfg.DialogExpiry == 0 {
		cfg.DialogExpiry = time.Hour
	}
	deps, clock := roletest.Deps(modeName)
	u := &UAS{cfg: cfg}
	if err := u.use(deps); err != nil {
		t.Fatal(err)
	}
	fs := &fakeSender{sent: make(chan *sip.Request, 16), answer: func(req *sip.Request) int { return 200 }}
	u.send = fs
	return u, clock, fs
}

// fakeSender plays the send path: it records each request and answers it
// with the code answer gives.
type fakeSender struct {
	sent   chan *sip.Request
	answer func(*sip.Request) int
	acks   atomic.Int32
}

func (f *fakeSender) reply(req *sip.Request) uac.Response {
	f.sent <- req
	res := sip.NewResponseFromRequest(req, f.answer(req), "Fake", nil)
	return uac.Response{Response: res, Edge: "edge-test", Branch: "z9hG4bKfake"}
}

func (f *fakeSender) Do(_ context.Context, req *sip.Request, _ uac.Via, _ func(uac.Response)) (uac.Response, error) {
	return f.reply(req), nil
}

func (f *fakeSender) Invite(_ context.Context, req *sip.Request, _ uac.Via, ack func(*sip.Response) (*sip.Request, error), _ func(uac.Response)) (uac.Response, error) {
	res := f.reply(req)
	if res.IsSuccess() {
		if _, err := ack(res.Response); err == nil {
			f.acks.Add(1)
		}
	}
	return res, nil
}

func (f *fakeSender) Stateless(context.Context, sip.Message, uac.Via) error { return nil }

func serve(u *UAS, req *sip.Request) *sipbus.Recorder {
	r, rec := sipbus.NewTestRequest(req, "127.0.0.1:5070")
	r.Local = "127.0.0.1:5060"
	u.Handlers()[string(req.Method)](r)
	return rec
}

func codes(rec *sipbus.Recorder) []int {
	var out []int
	for _, r := range rec.Responses {
		out = append(out, r.StatusCode)
	}
	return out
}

func TestOptions(t *testing.T) {
	tests := []struct {
		mode  string
		allow string
	}{
		{"minimal", "OPTIONS"},
		{"registrar", "OPTIONS, REGISTER"},
		{"call-server", "OPTIONS, INVITE, ACK, BYE, CANCEL, PRACK, INFO, UPDATE"},
		{"subscription-server", "OPTIONS, SUBSCRIBE, NOTIFY, PUBLISH"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			u := newUAS(t, tt.mode, Config{EnablePRACK: true})
			rec := serve(u, message(t, "OPTIONS", "", 1, nil, ""))
			// The same replica answers for whatever mode an edge announces.
			other, otherRec := sipbus.NewTestRequest(message(t, "OPTIONS", "", 1, nil, ""), "127.0.0.1:5070")
			other.Mode = "minimal"
			newUAS(t, "full-uas", Config{}).Handlers()["OPTIONS"](other)
			if got := otherRec.Last().GetHeader("Allow").Value(); got != "OPTIONS" {
				t.Fatalf("uas started as full-uas, edge says minimal: Allow %q", got)
			}
			res := rec.Last()
			if len(rec.Responses) != 1 || res.StatusCode != 200 {
				t.Fatalf("got %v, want one 200", codes(rec))
			}
			supported := ""
			if tt.mode == "call-server" {
				supported = "100rel, replaces"
			}
			want := map[string]string{"Allow": tt.allow, "Accept": "application/sdp", "Supported": supported, "Server": "siphond/test"}
			for name, value := range want {
				h := res.GetHeader(name)
				switch {
				case value == "" && h != nil:
					t.Errorf("%s: got %q, want no such header (none empty)", name, h.Value())
				case value != "" && (h == nil || h.Value() != value):
					t.Errorf("%s: got %v, want %q", name, h, value)
				}
			}
			if tag, _ := res.To().Params.Get("tag"); tag == "" {
				t.Error("200 to OPTIONS has no To tag (RFC 3261 §8.2.6.2)")
			}
		})
	}
}

// TestHandlersCoverModes: every method a mode routes to the uas has a handler,
// CANCEL aside (the edge answers it and tells the replica holding the INVITE).
func TestHandlersCoverModes(t *testing.T) {
	h := newUAS(t, "minimal", Config{}).Handlers()
	for _, name := range mode.Names() {
		md, _ := mode.Lookup(name)
		for _, r := range md.Routes {
			if _, ok := h[r.Method]; r.Role == mode.RoleUAS && r.Method != "CANCEL" && !ok {
				t.Errorf("%s: %s routed to the uas has no handler", name, r.Method)
			}
		}
	}
}

// TestInvite: the answers an INVITE gets before any dialog exists.
func TestInvite(t *testing.T) {
	noCommon := strings.Replace(strings.Replace(offerPCMU, "RTP/AVP 0 101", "RTP/AVP 18", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000", 1)
	tests := []struct {
		name    string
		cfg     Config
		extra   []string
		body    string
		want    []int
		warning string
	}{
		{"basic", Config{AutoAcceptCalls: true}, nil, offerPCMU, []int{100, 180, 200}, ""},
		{"late offer", Config{AutoAcceptCalls: true}, nil, "", []int{100, 180, 200}, ""},
		{"busy", Config{AutoAcceptCalls: false}, nil, offerPCMU, []int{486}, "auto-accept-calls"},
		{"no common codec", Config{AutoAcceptCalls: true}, nil, noCommon, []int{488}, "305 siphon-uas"},
		{"malformed SDP", Config{AutoAcceptCalls: true}, nil, "v=0\r\nthis is not sdp\r\n", []int{400}, "malformed SDP"},
		{"100rel required, PRACK off", Config{AutoAcceptCalls: true}, []string{"Require: 100rel"}, offerPCMU, []int{420}, "enable-prack"},
		{"unknown extension", Config{AutoAcceptCalls: true, EnablePRACK: true}, []string{"Require: foo"}, offerPCMU, []int{420}, "foo"},
		{"session interval too small", Config{AutoAcceptCalls: true, EnableSessionTimers: true, SessionExpires: 1800, MinSE: 90},
			[]string{"Supported: timer", "Session-Expires: 60"}, offerPCMU, []int{422}, "Min-SE"},
		{"replaces an unknown dialog", Config{AutoAcceptCalls: true}, []string{"Replaces: nope@x;to-tag=a;from-tag=b"}, offerPCMU, []int{481}, "Replaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUAS(t, "full-uas", tt.cfg)
			rec := serve(u, message(t, "INVITE", "", 1, tt.extra, tt.body))
			if got := codes(rec); len(got) != len(tt.want) || got[len(got)-1] != tt.want[len(tt.want)-1] {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			res := rec.Last()
			if tt.warning != "" {
				w := res.GetHeader("Warning")
				if w == nil || !strings.Contains(w.Value()+res.String(), tt.warning) {
					t.Fatalf("%d lacks a Warning with %q:\n%s", res.StatusCode, tt.warning, res)
				}
			}
			if res.StatusCode == 200 {
				if !strings.Contains(string(res.Body()), "m=audio") || res.Contact() == nil {
					t.Fatalf("200 without SDP or Contact:\n%s", res)
				}
				tag, _ := res.To().Params.Get("tag")
				if tag2, _ := rec.Responses[1].To().Params.Get("tag"); tag == "" || tag != tag2 {
					t.Fatalf("180 and 200 tags %q %q: must be one, non-empty", tag2, tag)
				}
			}
		})
	}
}

// setUpCall sets up a call on u and returns the local tag.
func setUpCall(t *testing.T, u *UAS, body string) string {
	t.Helper()
	rec := serve(u, message(t, "INVITE", "", 1, nil, body))
	res := rec.Last()
	if res.StatusCode != 200 {
		t.Fatalf("INVITE: %d", res.StatusCode)
	}
	tag, _ := res.To().Params.Get("tag")
	return tag
}

func TestInDialog(t *testing.T) {
	hold := strings.Replace(offerPCMU, "a=rtpmap:101", "a=sendonly\r\na=rtpmap:101", 1)
	hold = strings.Replace(hold, "o=alice 1 1", "o=alice 1 2", 1)
	u := newUAS(t, "full-uas", Config{AutoAcceptCalls: true})
	tag := setUpCall(t, u, offerPCMU)
	ctx := context.Background()
	id := store.DialogID("a84b4c76e66710@127.0.0.1", tag)

	rec := serve(u, message(t, "INVITE", tag, 2, nil, hold))
	if res := rec.Last(); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") || !strings.Contains(string(res.Body()), " 2 IN IP4") {
		t.Fatalf("hold: want 200 with a=recvonly and o= version 2, got\n%s", res)
	}
	rec = serve(u, message(t, "INVITE", tag, 2, nil, offerPCMU))
	if res := rec.Last(); res.StatusCode != 500 {
		t.Fatalf("re-INVITE with a used CSeq: %d, want 500", res.StatusCode)
	}
	rec = serve(u, message(t, "INVITE", tag, 3, nil, offerPCMU))
	if res := rec.Last(); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=sendrecv") || !strings.Contains(string(res.Body()), " 3 IN IP4") {
		t.Fatalf("resume: want 200 with a=sendrecv and o= version 3, got\n%s", res)
	}
	rec = serve(u, message(t, "INVITE", tag, 4, nil, offerPCMU))
	if res := rec.Last(); !strings.Contains(string(res.Body()), " 3 IN IP4") {
		t.Fatalf("an unchanged offer raised the o= version:\n%s", res.Body())
	}
	for _, m := range []string{"INFO", "UPDATE", "MESSAGE"} {
		if rec := serve(u, message(t, m, tag, 10+len(m), nil, "")); rec.Last().StatusCode != 200 {
			t.Fatalf("%s: %d", m, rec.Last().StatusCode)
		}
		if rec := serve(u, message(t, m, "unknown", 40, nil, "")); rec.Last().StatusCode != 481 {
			t.Fatalf("%s in an unknown dialog: %d, want 481", m, rec.Last().StatusCode)
		}
	}
	if rec := serve(u, message(t, "BYE", tag, 50, nil, "")); rec.Last().StatusCode != 200 {
		t.Fatalf("BYE: %d", rec.Last().StatusCode)
	}
	if _, err := u.dialogs.Get(ctx, id); err == nil {
		t.Fatal("dialog still stored after BYE")
	}
	if rec := serve(u, message(t, "BYE", tag, 51, nil, "")); rec.Last().StatusCode != 481 {
		t.Fatalf("second BYE: %d, want 481", rec.Last().StatusCode)
	}
}

func TestLateOfferAnswerFromACK(t *testing.T) {
	u := newUAS(t, "full-uas", Config{AutoAcceptCalls: true})
	tag := setUpCall(t, u, "")
	ctx := context.Background()
	id := store.DialogID("a84b4c76e66710@127.0.0.1", tag)
	if d, _ := u.dialogs.Get(ctx, id); !d.OfferPending {
		t.Fatal("late offer: no offer recorded as pending")
	}
	if rec := serve(u, message(t, "ACK", tag, 1, nil, offerPCMU)); len(rec.Responses) != 0 {
		t.Fatal("ACK answered")
	}
	d, _ := u.dialogs.Get(ctx, id)
	if d.OfferPending || d.RemoteSDP != offerPCMU {
		t.Fatalf("answer in ACK not taken: pending %v remote %q", d.OfferPending, d.RemoteSDP)
	}
}

func TestRefer(t *testing.T) {
	tests := []struct {
		name  string
		off   bool // --enable-refer=false
		refer []string
		want  int
	}{
		{"off", true, []string{"Refer-To: <sip:carol@192.0.2.9>"}, 403},
		{"no Refer-To", false, nil, 400},
		{"loopback target", false, []string{"Refer-To: <sip:carol@127.0.0.1:5099>"}, 403},
		{"private target", false, []string{"Refer-To: sip:carol@10.1.2.3"}, 403},
		{"not a SIP URI", false, []string{"Refer-To: <mailto:carol@example.com>"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUAS(t, "full-uas", Config{AutoAcceptCalls: true})
			u.enableRefer = !tt.off
			tag := setUpCall(t, u, offerPCMU)
			rec := serve(u, message(t, "REFER", tag, 2, tt.refer, ""))
			if rec.Last().StatusCode != tt.want {
				t.Fatalf("got %d, want %d:\n%s", rec.Last().StatusCode, tt.want, rec.Last())
			}
		})
	}
}

// TestUnansweredOfferDoesNotBlock: a late offer whose ACK brought no answer
// does not make every later re-INVITE a 491.
func TestUnansweredOfferDoesNotBlock(t *testing.T) {
	u := newUAS(t, "full-uas", Config{AutoAcceptCalls: true})
	tag := setUpCall(t, u, "")
	serve(u, message(t, "ACK", tag, 1, nil, ""))
	if rec := serve(u, message(t, "INVITE", tag, 2, nil, offerPCMU)); rec.Last().StatusCode != 200 {
		t.Fatalf("re-INVITE after an unanswered late offer: %d, want 200", rec.Last().StatusCode)
	}
}

func TestReferHeaders(t *testing.T) {
	got := unescapeHeaders("Replaces=c1%40h%3Bto-tag%3Da%3Bfrom-tag%3Db&Call-ID=evil&Via=SIP%2F2.0%2FUDP%20x&Subject=hi%0D%0AVia%3A%20x")
	if len(got) != 1 || got[0].String() != "Replaces: c1@h;to-tag=a;from-tag=b" {
		t.Fatalf("got %q, want only the Replaces line", got)
	}
}

// TestInDialogRequest: what the uas sends inside a dialog follows RFC 3261
// §12.2.1.1: Request-URI the remote target, Route the route set in order, the
// tags on the right sides, the local CSeq.
func TestInDialogRequest(t *testing.T) {
	u := newUAS(t, "full-uas", Config{AutoAcceptCalls: true})
	req := message(t, "INVITE", "", 7, []string{
		"Record-Route: <sip:p1.example.com;lr>", "Record-Route: <sip:p2.example.com;lr>",
	}, offerPCMU)
	r, rec := sipbus.NewTestRequest(req, "127.0.0.1:5070")
	r.Local = "127.0.0.1:5060"
	u.invite(r)
	res := rec.Last()
	if rr := res.GetHeaders("Record-Route"); len(rr) != 2 {
		t.Fatalf("200 does not echo the Record-Route set:\n%s", res)
	}
	tag, _ := res.To().Params.Get("tag")
	d, err := u.dialogs.Get(context.Background(), store.DialogID("a84b4c76e66710@127.0.0.1", tag))
	if err != nil {
		t.Fatal(err)
	}
	built, err := u.request(d, sip.BYE, 1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sip.ParseMessage([]byte(built.String())) // as it goes on the wire
	if err != nil {
		t.Fatal(err)
	}
	bye := msg.(*sip.Request)
	if bye.Recipient.String() != "sip:test@127.0.0.1:5070" {
		t.Errorf("Request-URI %s, want the remote target sip:test@127.0.0.1:5070", bye.Recipient.String())
	}
	routes := bye.GetHeaders("Route")
	if len(routes) != 2 || routes[0].Value() != "<sip:p1.example.com;lr>" || routes[1].Value() != "<sip:p2.example.com;lr>" {
		t.Errorf("Route %v, want p1 then p2", routes)
	}
	if ft, _ := bye.From().Params.Get("tag"); ft != tag {
		t.Errorf("From tag %q, want the local tag %q", ft, tag)
	}
	if tt, _ := bye.To().Params.Get("tag"); tt != "1928301774" {
		t.Errorf("To tag %q, want the caller's 1928301774", tt)
	}
	if bye.CSeq().SeqNo != 1 || bye.CallID().Value() != "a84b4c76e66710@127.0.0.1" {
		t.Errorf("CSeq %v Call-ID %v", bye.CSeq(), bye.CallID())
	}
}
