package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// notified awaits the next NOTIFY at u, answers it 200 and returns it.
func notified(t *testing.T, u *ua) *sip.Request {
	t.Helper()
	n := u.request("NOTIFY", 10*time.Second)
	u.answer(n, 200, "OK", "", nil, "")
	return n
}

func wantState(t *testing.T, n *sip.Request, prefix, basic string) {
	t.Helper()
	st := n.GetHeader("Subscription-State")
	if st == nil || !strings.HasPrefix(st.Value(), prefix) {
		t.Fatalf("Subscription-State %v, want %s…:\n%s", st, prefix, n)
	}
	if basic != "" && !strings.Contains(string(n.Body()), "<basic>"+basic+"</basic>") {
		t.Fatalf("NOTIFY body without <basic>%s</basic>:\n%s", basic, n.Body())
	}
}

// TestEventsPresence: a watcher subscribes to alice's presence (RFC 6665,
// RFC 3856 with PIDF bodies from her registrations): 200 and at once a NOTIFY
// active;expires, closed; her REGISTER brings a NOTIFY open; a refresh; an
// unsubscribe ends with terminated. And what a notifier refuses: 489 with
// Allow-Events, 423 with Min-Expires, 481, and a fetch.
func TestEventsPresence(t *testing.T) {
	p := start(t, true, "--mode", "full-uas")
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:alice@example.com"
	raw, cseq := d.req("SUBSCRIBE", []string{"Event: presence", "Expires: 600", "Accept: application/pidf+xml"}, "")
	w.send(raw)
	res := w.final("SUBSCRIBE", cseq)
	wantCode(t, res, 200)
	if e := res.GetHeader("Expires"); e == nil || e.Value() != "600" {
		t.Fatalf("200 without Expires: 600:\n%s", res)
	}
	d.toTag, _ = res.To().Params.Get("tag")
	n := notified(t, w)
	wantState(t, n, "active;expires=", "closed")
	if n.GetHeader("Event") == nil || n.GetHeader("Event").Value() != "presence" || n.ContentType().Value() != "application/pidf+xml" {
		t.Fatalf("NOTIFY without Event: presence and PIDF:\n%s", n)
	}

	reg := newUAC(t, "udp", p.sip)
	wantCode(t, reg.register("alice", "reg-presence-1", 1, "Contact: <sip:alice@192.0.2.30:5060>", "Expires: 300"), 200)
	wantState(t, notified(t, w), "active;expires=", "open")

	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 900"}, ""), 200) // a refresh
	wantState(t, notified(t, w), "active;expires=", "open")
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 0"}, ""), 200) // unsubscribe
	wantState(t, notified(t, w), "terminated", "")
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 900"}, ""), 481) // it is gone

	w2 := newUA(t, p.sip)
	other := w2.call()
	other.ruri = "sip:alice@example.com"
	res = other.do("SUBSCRIBE", []string{"Event: frobnication"}, "")
	wantCode(t, res, 489)
	if a := res.GetHeader("Allow-Events"); a == nil || !strings.Contains(a.Value(), "presence") {
		t.Fatalf("489 without Allow-Events: presence:\n%s", res)
	}
	opts := other.do("OPTIONS", nil, "") // RFC 6665 §8.2.2: OPTIONS says which packages
	if a := opts.GetHeader("Allow-Events"); a == nil || a.Value() != "dialog, message-summary, presence, reg" {
		t.Fatalf("OPTIONS without Allow-Events: dialog, message-summary, presence, reg:\n%s", opts)
	}
	res = other.do("SUBSCRIBE", []string{"Event: presence", "Expires: 10"}, "")
	wantCode(t, res, 423)
	if m := res.GetHeader("Min-Expires"); m == nil || m.Value() != "60" {
		t.Fatalf("423 without Min-Expires: 60:\n%s", res)
	}
	// A fetch: the state once, then terminated (RFC 6665 §4.4.3).
	wantCode(t, other.do("SUBSCRIBE", []string{"Event: presence", "Expires: 0"}, ""), 200)
	wantState(t, notified(t, w2), "terminated;reason=timeout", "open")
}

// TestEventsTimeout: a subscription not refreshed ends with one NOTIFY
// terminated;reason=timeout (RFC 6665 §4.2.2), from the sweep.
func TestEventsTimeout(t *testing.T) {
	p := start(t, true, "--mode", "subscription-server", "--sub-min-expiry", "1")
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:bob@example.com"
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 1"}, ""), 200)
	wantState(t, notified(t, w), "active;expires=", "closed")
	wantState(t, notified(t, w), "terminated;reason=timeout", "")
	w.quiet(t, 500*time.Millisecond) // exactly one
}

// TestEventsReg: the reg package (RFC 3680) follows carol's REGISTER and its
// expiry: reginfo version 0 with no contact, then version 1 with her
// binding, active, then version 2 without it once it expired unrenewed.
func TestEventsReg(t *testing.T) {
	p := start(t, true, "--mode", "full-uas", "--reg-min-expiry", "1")
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:carol@example.com"
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: reg", "Accept: application/reginfo+xml"}, ""), 200)
	n := notified(t, w)
	body := string(n.Body())
	if n.ContentType().Value() != "application/reginfo+xml" || !strings.Contains(body, `version="0"`) || !strings.Contains(body, `state="init"`) {
		t.Fatalf("first reginfo NOTIFY: want version 0, init:\n%s", n)
	}
	reg := newUAC(t, "udp", p.sip)
	wantCode(t, reg.register("carol", "reg-reginfo-1", 1, "Contact: <sip:carol@192.0.2.31:5060>", "Expires: 2"), 200)
	body = string(notified(t, w).Body())
	if !strings.Contains(body, `version="1"`) || !strings.Contains(body, `state="active"`) || !strings.Contains(body, "<uri>sip:carol@192.0.2.31:5060</uri>") {
		t.Fatalf("reginfo after the REGISTER: want version 1, active, her contact:\n%s", body)
	}
	body = string(notified(t, w).Body()) // the binding expires: the registrar's sweep says so
	if !strings.Contains(body, `version="2"`) || !strings.Contains(body, `state="init"`) || strings.Contains(body, "<contact") {
		t.Fatalf("reginfo after the binding expired: want version 2, init, no contact:\n%s", body)
	}
}

// TestEventsDialog: the dialog package (RFC 4235) follows a call to the uas:
// a watcher of the called party gets confirmed, then terminated.
func TestEventsDialog(t *testing.T) {
	p := start(t, true, "--mode", "full-uas")
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:service@" + p.sip // the party the calls below are to
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: dialog"}, ""), 200)
	if body := string(notified(t, w).Body()); !strings.Contains(body, `state="full"`) || !strings.Contains(body, `version="0"`) {
		t.Fatalf("first dialog-info: want full state, version 0:\n%s", body)
	}
	caller := newUA(t, p.sip)
	c := caller.call()
	c.established(nil, offer)
	body := string(notified(t, w).Body())
	if !strings.Contains(body, "<state>confirmed</state>") || !strings.Contains(body, `call-id="`+c.callID+`"`) || !strings.Contains(body, `version="1"`) {
		t.Fatalf("dialog-info after the answer: want the call confirmed, version 1:\n%s", body)
	}
	wantCode(t, c.do("BYE", nil, ""), 200)
	if body := string(notified(t, w).Body()); !strings.Contains(body, "<state>terminated</state>") || !strings.Contains(body, `version="2"`) {
		t.Fatalf("dialog-info after the BYE: want terminated, version 2:\n%s", body)
	}
}

// TestEventsReplicas: two events replicas as separate processes on Redis.
// Four watchers of dora, spread over both; one replica is SIGKILLed; a
// PUBLISH for dora then reaches each watcher exactly once, a refresh of each
// is served by the survivor, and each subscription still ends with exactly
// one terminated NOTIFY when it expires (the store hands each expiry to one
// replica).
func TestEventsReplicas(t *testing.T) {
	nats, redis := testutil.NATSServer(t), testutil.Redis(t)
	shared := []string{"--mode", "subscription-server", "--nats", nats.URL, "--redis", redis, "--sub-min-expiry", "1"}
	a := start(t, false, append(shared, "--role", "events")...)
	start(t, false, append(shared, "--role", "events")...)
	edge := start(t, true, append(shared, "--role", "edge")...)
	dora := "sip:dora@example.com"

	w := newUA(t, edge.sip)
	subs := map[string]*dialog{}
	for range 4 {
		d := w.call()
		d.ruri = dora
		res := d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 60"}, "")
		wantCode(t, res, 200)
		d.toTag, _ = res.To().Params.Get("tag")
		wantState(t, notified(t, w), "active;expires=", "closed")
		subs[d.callID] = d
	}
	a.stop(syscall.SIGKILL)
	nats.WaitSubscribers(t, wire.SIPRequest(wire.RoleEvents, "PUBLISH"), 1, 10*time.Second)

	// Every NOTIFY is answered as it comes and counted once per CSeq (the
	// edge retransmits until the answer is in): by kind, per subscription.
	published, ended := map[string]map[uint32]bool{}, map[string]map[uint32]bool{}
	count := func(m map[string]map[uint32]bool, n *sip.Request) {
		if m[n.CallID().Value()] == nil {
			m[n.CallID().Value()] = map[uint32]bool{}
		}
		m[n.CallID().Value()][n.CSeq().SeqNo] = true
	}
	next := func() *sip.Request {
		for {
			var m sip.Message
			if len(w.backlog) > 0 { // set aside by an await
				m, w.backlog = w.backlog[0], w.backlog[1:]
			} else {
				select {
				case m = <-w.in:
				case <-time.After(100 * time.Millisecond):
					return nil
				}
			}
			if n, ok := m.(*sip.Request); ok && n.Method == sip.NOTIFY {
				w.answer(n, 200, "OK", "", nil, "")
				st := n.GetHeader("Subscription-State").Value()
				switch {
				case strings.HasPrefix(st, "terminated;reason=timeout"):
					count(ended, n)
				case strings.Contains(string(n.Body()), "<note>back from lunch</note>") && expiresIn(st) > 2:
					count(published, n) // not a refresh's NOTIFY: those say expires=2
				}
				return n
			}
		}
	}
	all := func(m map[string]map[uint32]bool) bool {
		for id := range subs {
			if len(m[id]) == 0 {
				return false
			}
		}
		return true
	}
	pub := newUA(t, edge.sip)
	etag(t, publish(pub, dora, "presence", []string{"Content-Type: application/pidf+xml"}, pidf(dora, "open", "back from lunch")))
	deadline := time.Now().Add(30 * time.Second)
	for !all(published) {
		if time.Now().After(deadline) {
			t.Fatalf("the PUBLISH did not reach every watcher within 30s: %v", published)
		}
		next()
	}
	for _, d := range subs { // the survivor serves every refresh: the state is in Redis
		wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 2"}, ""), 200)
	}
	var settled time.Time // once all ended: a second NOTIFY of either kind would come before it
	for settled.IsZero() || time.Now().Before(settled) {
		if time.Now().After(deadline) {
			t.Fatalf("not every subscription ended within 30s: %v", ended)
		}
		next()
		if settled.IsZero() && all(ended) {
			settled = time.Now().Add(1500 * time.Millisecond)
		}
	}
	for id := range subs {
		if len(published[id]) != 1 || len(ended[id]) != 1 {
			t.Errorf("subscription %s: %d NOTIFYs of the PUBLISH and %d terminated, want 1 and 1", id, len(published[id]), len(ended[id]))
		}
	}
}

// TestEventsWithSIPp: SIPp's watcher (bench/sipp/subscribe.xml) subscribes
// to presence, takes the NOTIFY, unsubscribes and takes the last NOTIFY, on
// subscription-server — ten watchers.
func TestEventsWithSIPp(t *testing.T) {
	p := start(t, true, "--mode", "subscription-server")
	sipp(t, "../../bench/sipp/subscribe.xml", "u1", p.sip, 10, 10, "-s", "erin").mustPass(t, 10)
}

// expiresIn is the expires parameter of an active Subscription-State, or -1.
func expiresIn(state string) int {
	_, v, ok := strings.Cut(state, "active;expires=")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.SplitN(v, ";", 2)[0])
	if err != nil {
		return -1
	}
	return n
}

func pidf(entity, basic, note string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\r\n" +
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="` + entity + `">` +
		`<tuple id="phone"><status><basic>` + basic + `</basic></status><note>` + note + `</note></tuple></presence>` + "\r\n"
}

// publish sends a PUBLISH for resource from its own transaction and returns
// the final response.
func publish(u *ua, resource, event string, hdrs []string, body string) *sip.Response {
	p := u.call()
	p.ruri = resource
	return p.do("PUBLISH", append([]string{"Event: " + event}, hdrs...), body)
}

func etag(t *testing.T, res *sip.Response) string {
	t.Helper()
	wantCode(t, res, 200)
	h := res.GetHeader("SIP-ETag")
	if h == nil || h.Value() == "" {
		t.Fatalf("200 to PUBLISH without SIP-ETag:\n%s", res)
	}
	return h.Value()
}

// TestEventsPublish: PUBLISH (RFC 3903) sets frank's presence and his
// watcher gets the published PIDF; SIP-If-Match modifies it (a new
// entity-tag, the old one then 412), refreshes it (no NOTIFY: the state did
// not change) and removes it (the state falls back to his registrations).
// What a compositor refuses: 412, 489, 415, 400, 423.
func TestEventsPublish(t *testing.T) {
	p := start(t, true, "--mode", "subscription-server")
	frank := "sip:frank@example.com"
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = frank
	res := d.do("SUBSCRIBE", []string{"Event: presence"}, "")
	wantCode(t, res, 200)
	d.toTag, _ = res.To().Params.Get("tag")
	wantState(t, notified(t, w), "active;expires=", "closed")

	pub := newUA(t, p.sip)
	pidfType := "Content-Type: application/pidf+xml"
	res = publish(pub, frank, "presence", []string{pidfType, "Expires: 120"}, pidf(frank, "open", "in a meeting"))
	first := etag(t, res)
	if e := res.GetHeader("Expires"); e == nil || e.Value() != "120" {
		t.Fatalf("200 to PUBLISH without Expires: 120:\n%s", res)
	}
	n := notified(t, w)
	if !strings.Contains(string(n.Body()), "<note>in a meeting</note>") || n.ContentType().Value() != "application/pidf+xml" {
		t.Fatalf("NOTIFY after PUBLISH: want the published PIDF:\n%s", n)
	}

	second := etag(t, publish(pub, frank, "presence", []string{pidfType, "SIP-If-Match: " + first}, pidf(frank, "closed", "gone home")))
	if second == first {
		t.Fatal("a modify kept the entity-tag (RFC 3903 §6 step 7: a new one each time)")
	}
	wantState(t, notified(t, w), "active;expires=", "closed")
	wantCode(t, publish(pub, frank, "presence", []string{"SIP-If-Match: " + first}, ""), 412) // replaced

	third := etag(t, publish(pub, frank, "presence", []string{"SIP-If-Match: " + second, "Expires: 300"}, "")) // a refresh
	res = publish(pub, frank, "presence", []string{"SIP-If-Match: " + third, "Expires: 0"}, "")                // a remove
	wantCode(t, res, 200)
	// The refresh brought no NOTIFY: the next one is the remove's, from his
	// registrations again.
	if body := string(notified(t, w).Body()); !strings.Contains(body, `<tuple id="reg">`) {
		t.Fatalf("NOTIFY after the remove: want the registrations' PIDF, got:\n%s", body)
	}

	wantCode(t, publish(pub, frank, "presence", []string{"SIP-If-Match: 0123456789abcdef"}, ""), 412)
	res = publish(pub, frank, "reg", []string{"Content-Type: application/reginfo+xml"}, "<reginfo/>")
	wantCode(t, res, 489)
	if a := res.GetHeader("Allow-Events"); a == nil || a.Value() != "message-summary, presence" {
		t.Fatalf("489 to PUBLISH without Allow-Events: message-summary, presence:\n%s", res)
	}
	res = publish(pub, frank, "presence", []string{"Content-Type: text/plain"}, "open")
	wantCode(t, res, 415)
	if a := res.GetHeader("Accept"); a == nil || a.Value() != "application/pidf+xml" {
		t.Fatalf("415 without Accept: application/pidf+xml:\n%s", res)
	}
	wantCode(t, publish(pub, frank, "presence", []string{pidfType}, "<presence><unclosed>"), 400)
	wantCode(t, publish(pub, frank, "presence", nil, ""), 400) // an initial PUBLISH with no state
	wantCode(t, publish(pub, frank, "presence", []string{pidfType, "Expires: 5"}, pidf(frank, "open", "")), 423)
	// State that expires at once: 200, nothing kept (the watcher hears of
	// nothing: the next NOTIFY is its unsubscribe's).
	etag(t, publish(pub, frank, "presence", []string{pidfType, "Expires: 0"}, pidf(frank, "open", "gone at once")))
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 0"}, ""), 200)
	if n := notified(t, w); !strings.Contains(string(n.Body()), `<tuple id="reg">`) {
		t.Fatalf("NOTIFY after a PUBLISH with Expires: 0: want the registrations' PIDF still:\n%s", n)
	}
}

// TestEventsNotifyFailed: a NOTIFY answered with a failure that cannot be
// retried ends its subscription (RFC 6665 §4.2.2); event types compare byte
// for byte (§8.2.1).
func TestEventsNotifyFailed(t *testing.T) {
	url := testutil.NATSServer(t).URL
	p := start(t, true, "--mode", "subscription-server", "--nats", url)
	ev := watchRole(t, url, wire.RoleEvents)
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:kim@example.com"
	res := d.do("SUBSCRIBE", []string{"Event: presence"}, "")
	wantCode(t, res, 200)
	d.toTag, _ = res.To().Params.Get("tag")
	w.answer(w.request("NOTIFY", 10*time.Second), 488, "Not Acceptable Here", "", nil, "")
	if got := ev.await(wire.EventSubscriptionEnded, d.callID); got.Reason != "notify-failed" {
		t.Fatalf("subscription.ended with reason %q, want notify-failed", got.Reason)
	}
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence"}, ""), 481)
	other := w.call()
	other.ruri = "sip:kim@example.com"
	wantCode(t, other.do("SUBSCRIBE", []string{"Event: Presence"}, ""), 489)
}

// TestEventsMessageSummary: the message-summary package (RFC 3842): no
// messages until a voicemail system PUBLISHes the account's counts, then
// those; a publication not refreshed lapses (its watcher is told) — on the
// sweep, with a 1 s expiry.
func TestEventsMessageSummary(t *testing.T) {
	p := start(t, true, "--mode", "full-uas", "--sub-min-expiry", "1")
	gina := "sip:gina@example.com"
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = gina
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: message-summary", "Accept: application/simple-message-summary"}, ""), 200)
	n := notified(t, w)
	if n.ContentType().Value() != "application/simple-message-summary" || !strings.HasPrefix(string(n.Body()), "Messages-Waiting: no\r\n") ||
		!strings.Contains(string(n.Body()), "Message-Account: "+gina) {
		t.Fatalf("first message summary: want Messages-Waiting: no for her account:\n%s", n)
	}
	summary := "Messages-Waiting: yes\r\nMessage-Account: " + gina + "\r\nVoice-Message: 2/8 (0/2)\r\n"
	vm := newUA(t, p.sip)
	etag(t, publish(vm, gina, "message-summary", []string{"Content-Type: application/simple-message-summary", "Expires: 1"}, summary))
	if body := string(notified(t, w).Body()); body != summary {
		t.Fatalf("message summary after PUBLISH: got %q, want %q", body, summary)
	}
	if body := string(notified(t, w).Body()); !strings.HasPrefix(body, "Messages-Waiting: no") {
		t.Fatalf("message summary after the publication lapsed: got %q, want no messages", body)
	}
	wantCode(t, publish(vm, gina, "message-summary", []string{"Content-Type: application/simple-message-summary"}, "Voice-Message: 1/0\r\n"), 400)
}

// TestEventsNotifyReceived: subscription-server serves NOTIFY (RFC 6665
// §4.1.3): one in the dialog of a subscription the lab holds gets 200, one
// for no subscription 481; each is published as an event.
func TestEventsNotifyReceived(t *testing.T) {
	url := testutil.NATSServer(t).URL
	p := start(t, true, "--mode", "subscription-server", "--nats", url)
	ev := watchRole(t, url, wire.RoleEvents)
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:hana@example.com"
	res := d.do("SUBSCRIBE", []string{"Event: presence"}, "")
	wantCode(t, res, 200)
	d.toTag, _ = res.To().Params.Get("tag")
	notified(t, w)

	wantCode(t, d.do("NOTIFY", []string{"Event: presence", "Subscription-State: active;expires=60"}, ""), 200)
	if got := ev.await(wire.EventNotifyReceived, d.callID); !got.Matched {
		t.Fatalf("notify.received for the subscription's dialog: matched false")
	}
	wantCode(t, d.do("NOTIFY", []string{"Event: dialog", "Subscription-State: active"}, ""), 481) // another package
	stray := w.call()
	wantCode(t, stray.do("NOTIFY", []string{"Event: message-summary", "Subscription-State: active",
		"Content-Type: application/simple-message-summary"}, "Messages-Waiting: yes\r\n"), 481)
	if got := ev.await(wire.EventNotifyReceived, stray.callID); got.Matched || got.Body != "Messages-Waiting: yes\r\n" {
		t.Fatalf("notify.received for a stray NOTIFY: %+v, want unmatched with its body", got)
	}
}

// TestEventsDialogUsages: one dialog holds several subscriptions (RFC 6665
// §4.5.2), told apart by package and Event id: a second SUBSCRIBE in the
// dialog with id=2, and a third to reg, each get their own NOTIFYs (Event
// with its id), whose CSeqs rise across the whole dialog; ending one leaves
// the others.
func TestEventsDialogUsages(t *testing.T) {
	p := start(t, true, "--mode", "full-uas")
	w := newUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:ivan@example.com"
	res := d.do("SUBSCRIBE", []string{"Event: presence"}, "")
	wantCode(t, res, 200)
	d.toTag, _ = res.To().Params.Get("tag")
	var cseqs []uint32
	note := func(n *sip.Request, event string) {
		t.Helper()
		if got := n.GetHeader("Event"); got == nil || got.Value() != event {
			t.Fatalf("NOTIFY with Event %v, want %s:\n%s", got, event, n)
		}
		if n.CallID().Value() != d.callID {
			t.Fatalf("NOTIFY outside the dialog:\n%s", n)
		}
		cseqs = append(cseqs, n.CSeq().SeqNo)
	}
	note(notified(t, w), "presence")
	res = d.do("SUBSCRIBE", []string{"Event: presence;id=2"}, "")
	wantCode(t, res, 200)
	if tag, _ := res.To().Params.Get("tag"); tag != d.toTag {
		t.Fatalf("a subscription in the dialog answered with To tag %q, want the dialog's %q", tag, d.toTag)
	}
	note(notified(t, w), "presence;id=2")
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: reg"}, ""), 200)
	note(notified(t, w), "reg")

	reg := newUAC(t, "udp", p.sip)
	wantCode(t, reg.register("ivan", "reg-usages-1", 1, "Contact: <sip:ivan@192.0.2.32:5060>", "Expires: 300"), 200)
	events := map[string]bool{}
	for range 3 { // each subscription hears of the binding once
		n := notified(t, w)
		events[n.GetHeader("Event").Value()] = true
		note(n, n.GetHeader("Event").Value())
	}
	if len(events) != 3 {
		t.Fatalf("NOTIFYs after the REGISTER for %v, want presence, presence;id=2 and reg once each", events)
	}
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence;id=2", "Expires: 0"}, ""), 200)
	n := notified(t, w)
	note(n, "presence;id=2")
	wantState(t, n, "terminated", "")
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence", "Expires: 600"}, ""), 200) // the first lives on
	n = notified(t, w)
	note(n, "presence")
	wantState(t, n, "active;expires=", "open")
	for i := 1; i < len(cseqs); i++ {
		if cseqs[i] <= cseqs[i-1] {
			t.Fatalf("NOTIFY CSeqs in the dialog %v: want each above the last (RFC 3261 §12.2.1.1)", cseqs)
		}
	}
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence;id=3", "Expires: 0"}, ""), 200) // a fetch in the dialog
	wantState(t, notified(t, w), "terminated;reason=timeout", "open")
}

// TestEventsOverTCP: a subscriber over TCP gets its NOTIFYs on its own
// connection (RFC 5626's flow, as the edge's send path keeps it), the first
// and a later one a PUBLISH brings: its Contact names a port nothing
// listens on.
func TestEventsOverTCP(t *testing.T) {
	p := start(t, true, "--mode", "subscription-server")
	w := newTCPUA(t, p.sip)
	d := w.call()
	d.ruri = "sip:jack@example.com"
	wantCode(t, d.do("SUBSCRIBE", []string{"Event: presence"}, ""), 200)
	wantState(t, notified(t, w), "active;expires=", "closed")
	jack := "sip:jack@example.com"
	etag(t, publish(newUA(t, p.sip), jack, "presence", []string{"Content-Type: application/pidf+xml"}, pidf(jack, "open", "on TCP")))
	if n := notified(t, w); !strings.Contains(string(n.Body()), "<note>on TCP</note>") {
		t.Fatalf("NOTIFY after the PUBLISH over the subscriber's connection: want the published PIDF:\n%s", n)
	}
}
