package uas

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The time-driven parts of the uas, on the fake clock: ringing for
// --answer-delay, a CANCEL while ringing, the reliable provisional's
// retransmission and its PRACK wait, and the sweep's session refresh, session
// expiry and dialog expiry.

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ringing serves an INVITE with transaction key tx, as the edge hands it over.
func ringing(t *testing.T, u *UAS, tx string, extra []string) *sipbus.Recorder {
	t.Helper()
	r, rec := sipbus.NewTestRequest(message(t, "INVITE", "", 1, extra, offerPCMU), "127.0.0.1:5070")
	r.Local, r.Tx = "127.0.0.1:5060", tx
	u.invite(r)
	return rec
}

func await(t *testing.T, ctx context.Context, rec *sipbus.Recorder, n, code int) *sip.Response {
	t.Helper()
	res, err := rec.Await(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != code {
		t.Fatalf("response %d: %d, want %d (all: %v)", n, res.StatusCode, code, rec.Codes())
	}
	return res
}

func block(t *testing.T, ctx context.Context, clock interface {
	BlockUntilContext(context.Context, int) error
}, n int) {
	t.Helper()
	if err := clock.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers: %v", n, err)
	}
}

func TestAnswerDelay(t *testing.T) {
	u, clock, _ := newUASWithClock(t, "call-server", Config{AutoAcceptCalls: true, AnswerDelay: 3 * time.Second})
	ctx := testCtx(t)
	rec := ringing(t, u, "tx-1", nil)
	ringingTag, _ := await(t, ctx, rec, 2, 180).To().Params.Get("tag")
	block(t, ctx, clock, 1) // the answer timer
	clock.Advance(3*time.Second - time.Millisecond)
	block(t, ctx, clock, 1) // still set: not answered early
	if got := rec.Codes(); len(got) != 2 {
		t.Fatalf("answered before --answer-delay: %v", got)
	}
	clock.Advance(time.Millisecond)
	ok := await(t, ctx, rec, 3, 200)
	if tag, _ := ok.To().Params.Get("tag"); tag != ringingTag {
		t.Fatalf("200 tag %q, 180 tag %q: one dialog, one tag", tag, ringingTag)
	}
}

func TestCancelWhileRinging(t *testing.T) {
	u, clock, _ := newUASWithClock(t, "call-server", Config{AutoAcceptCalls: true, AnswerDelay: 30 * time.Second})
	events := make(chan string, 8) // announced from the ringing calls' goroutines
	u.publish = func(m *nats.Msg) error {
		var ev wire.CallEvent
		_ = json.Unmarshal(m.Data, &ev)
		events <- ev.Event
		return nil
	}
	ctx := testCtx(t)
	other := ringing(t, u, "tx-other", nil) // a spiral: same Call-ID and From tag, another transaction
	rec := ringing(t, u, "tx-2", nil)
	tag, _ := await(t, ctx, rec, 2, 180).To().Params.Get("tag")
	await(t, ctx, other, 2, 180)
	cancel := message(t, "CANCEL", "", 1, nil, "")
	u.fromReplicaSubject(&nats.Msg{Header: nats.Header{wire.HdrTx: {"tx-2"}}, Data: []byte(cancel.String())})
	res := await(t, ctx, rec, 3, 487)
	if got, _ := res.To().Params.Get("tag"); got != tag {
		t.Fatalf("487 tag %q, want the 180's %q (RFC 3261 §8.2.6.2)", got, tag)
	}
	if _, err := u.dialogs.Get(ctx, store.DialogID("a84b4c76e66710@127.0.0.1", tag)); err == nil {
		t.Fatal("the cancelled call's early dialog is still stored")
	}
	if ev := <-events; ev != wire.EventCallCancelled {
		t.Fatalf("announced %s, want %s", ev, wire.EventCallCancelled)
	}
	// The other transaction rings on and is answered.
	block(t, ctx, clock, 1)
	clock.Advance(30 * time.Second)
	await(t, ctx, other, 3, 200)
}

func TestReliableProvisional(t *testing.T) {
	u, clock, _ := newUASWithClock(t, "call-server", Config{AutoAcceptCalls: true, EnablePRACK: true})
	ctx := testCtx(t)
	rec := ringing(t, u, "tx-3", []string{"Supported: 100rel"})
	first := await(t, ctx, rec, 2, 180)
	if first.GetHeader("RSeq") == nil {
		t.Fatalf("180 not reliable:\n%s", first)
	}
	// Unacknowledged over UDP: again at T1, 2·T1, 4·T1 (RFC 3262 §3).
	elapsed := time.Duration(0)
	for i, gap := range []time.Duration{sip.T1, 2 * sip.T1, 4 * sip.T1} {
		block(t, ctx, clock, 2) // the retransmission and give-up timers
		clock.Advance(gap)
		elapsed += gap
		await(t, ctx, rec, 3+i, 180)
	}
	block(t, ctx, clock, 2)
	clock.Advance(prackWait - elapsed)
	var res *sip.Response
	for n := len(rec.Codes()) + 1; res == nil || res.StatusCode < 200; n++ {
		var err error
		if res, err = rec.Await(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if res.StatusCode != 504 {
		t.Fatalf("no PRACK in 64*T1: %d, want 504", res.StatusCode)
	}
	if tag, _ := res.To().Params.Get("tag"); tag == "" {
		t.Fatal("504 without the dialog's tag")
	}
}

func TestPRACKEndsTheWait(t *testing.T) {
	u, clock, _ := newUASWithClock(t, "call-server", Config{AutoAcceptCalls: true, EnablePRACK: true})
	ctx := testCtx(t)
	rec := ringing(t, u, "tx-4", []string{"Supported: 100rel"})
	first := await(t, ctx, rec, 2, 180)
	tag, _ := first.To().Params.Get("tag")
	block(t, ctx, clock, 2)
	prack := serve(u, message(t, "PRACK", tag, 2, []string{"RAck: " + first.GetHeader("RSeq").Value() + " 1 INVITE"}, ""))
	if prack.Last().StatusCode != 200 {
		t.Fatalf("PRACK: %d", prack.Last().StatusCode)
	}
	// The replica holding the INVITE hears of it as another replica would tell it.
	u.fromReplicaSubject(&nats.Msg{Data: []byte(message(t, "PRACK", tag, 2, []string{"RAck: " + first.GetHeader("RSeq").Value() + " 1 INVITE"}, "").String())})
	await(t, ctx, rec, 3, 200)
}

// sweepDialog stores a confirmed dialog due at due and returns it.
func sweepDialog(t *testing.T, u *UAS, d *store.Dialog) {
	t.Helper()
	if err := u.dialogs.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	u, clock, fs := newUASWithClock(t, "full-uas", Config{AutoAcceptCalls: true, EnableSessionTimers: true, SessionExpires: 90, MinSE: 90, DialogExpiry: time.Hour})
	events := make(chan wire.CallEvent, 16)
	u.publish = func(m *nats.Msg) error {
		var ev wire.CallEvent
		_ = json.Unmarshal(m.Data, &ev)
		events <- ev
		return nil
	}
	ctx := testCtx(t)
	now := clock.Now()
	base := store.Dialog{CallID: "c@test", RemoteTag: "peer", LocalURI: "<sip:uas@127.0.0.1>", RemoteURI: "<sip:peer@127.0.0.1>",
		RemoteTarget: "sip:peer@127.0.0.1:5070", Local: "127.0.0.1:5060", Transport: "udp", State: store.DialogConfirmed,
		LocalSDP: offerPCMU, Created: now, Expires: now.Add(2 * time.Hour)}
	refresher, expiring, idle := base, base, base
	refresher.ID, refresher.LocalTag = store.DialogID("c@test", "r1"), "r1"
	refresher.SessionExpires, refresher.Refresher, refresher.Refreshed = 90, "uas", now
	refresher.Due = sessionDue(&refresher)
	expiring.ID, expiring.LocalTag = store.DialogID("c@test", "e1"), "e1"
	expiring.SessionExpires, expiring.Refresher, expiring.Refreshed = 90, "uac", now
	expiring.Due = sessionDue(&expiring)
	idle.ID, idle.LocalTag = store.DialogID("c@test", "i1"), "i1"
	idle.Due = now.Add(time.Hour)
	for _, d := range []store.Dialog{refresher, expiring, idle} {
		sweepDialog(t, u, &d)
	}
	sweep := func(at time.Duration) {
		clock.Advance(at - clock.Since(now))
		for _, d := range u.due() {
			u.act(d)
		}
	}

	// Half the interval: the uas, refresher, re-INVITEs (the peer has no UPDATE) and ACKs the 2xx.
	sweep(44 * time.Second)
	if len(fs.sent) != 0 {
		t.Fatalf("acted before anything was due: %v", (<-fs.sent).Method)
	}
	sweep(45 * time.Second)
	reinv := <-fs.sent
	if reinv.Method != sip.INVITE || reinv.GetHeader("Session-Expires").Value() != "90;refresher=uas" || fs.acks.Load() != 1 {
		t.Fatalf("refresh: %s with Session-Expires %v, %d ACKs", reinv.Method, reinv.GetHeader("Session-Expires"), fs.acks.Load())
	}
	if ev := <-events; ev.Event != wire.EventSessionRefreshed || ev.LocalTag != "r1" {
		t.Fatalf("event %+v", ev)
	}
	// The UAC refreshes the other; it did not: BYE once the interval less its margin is over (RFC 4028 §10).
	sweep(59 * time.Second)
	if len(fs.sent) != 0 {
		t.Fatalf("ended the UAC-refreshed session early: %v", (<-fs.sent).Method)
	}
	sweep(60 * time.Second)
	if bye := <-fs.sent; bye.Method != sip.BYE || tagOf(bye.From()) != "e1" {
		t.Fatalf("want the BYE of e1, got %s", bye.StartLine())
	}
	if ev := <-events; ev.Event != wire.EventSessionExpired || ev.LocalTag != "e1" {
		t.Fatalf("event %+v", ev)
	}
	// No request for --dialog-expiry: forgotten, without a BYE.
	sweep(time.Hour)
	if ev := <-events; ev.Event != wire.EventDialogExpired || ev.LocalTag != "i1" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := u.dialogs.Get(ctx, idle.ID); err == nil {
		t.Fatal("expired dialog still stored")
	}
	for len(fs.sent) > 0 {
		if m := <-fs.sent; m.Method != sip.INVITE {
			t.Fatalf("unexpected %s", m.StartLine())
		}
	}
}
