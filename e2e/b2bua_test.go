package e2e_test

import (
	"context"
	"testing"
	"time"
)

// TestB2BUALab runs the b2bua profile once for every b2bua suite test: SIPp
// phones on the host register through the lab's edge and call each other
// through the b2bua (the callee's scenario requires the b2bua's own dialog:
// no Record-Route, the b2bua's Contact), over UDP and TCP, with two b2bua
// replicas, one of which is killed with calls up and once with calls ringing.
func TestB2BUALab(t *testing.T) {
	ctx := context.Background()
	l := upLab(t, "b2bua", map[string]string{"SIPHON_SENDER_CHECK": senderCheck.String()})
	host, err := l.HostIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ph := phones{t: t, l: l, host: host}

	t.Run("two phones register and call over UDP", func(t *testing.T) {
		ph.t = t
		bob := ph.port()
		ph.register("bob", bob)
		callee := ph.sipp("../bench/sipp/b2bua-uas.xml", bob, 5)
		ph.call("../bench/sipp/proxy-uac.xml", ph.port(), "bob", 5, "-d", "500").mustPass(t, 5)
		ph.passed(callee, "bob")
	})

	t.Run("a caller over TCP to a callee over UDP", func(t *testing.T) {
		ph.t = t
		carol := ph.port()
		ph.register("carol", carol)
		callee := ph.sipp("../bench/sipp/b2bua-uas.xml", carol, 3)
		ph.call("../bench/sipp/proxy-uac.xml", ph.port(), "carol", 3, "-d", "500", "-t", "t1").mustPass(t, 3)
		ph.passed(callee, "carol")
	})

	if err := l.Scale(ctx, "b2bua", 2); err != nil {
		t.Fatal(err)
	}
	replicas, err := l.Replicas(ctx, "b2bua")
	if err != nil || len(replicas) != 2 {
		t.Fatalf("b2bua replicas: %v %v", replicas, err)
	}

	t.Run("a b2bua replica killed with 40 calls up", func(t *testing.T) {
		ph.t = t
		const calls = 40
		dave := ph.port()
		ph.register("dave", dave)
		callee := ph.sipp("../bench/sipp/b2bua-uas.xml", dave, calls)
		answered := ph.edgeCount("INVITE", "200")
		done := make(chan sippResult, 1)
		go func() {
			done <- ph.call("../bench/sipp/proxy-uac.xml", ph.port(), "dave", calls, "-d", "8000", "-r", "20")
		}()
		// The edge counts the 200s it sends: one per call, the caller's.
		ph.await(func() bool { return ph.edgeCount("INVITE", "200")-answered >= calls }, "every call answered")
		victim := replicas[0]
		if err := l.Kill(ctx, "b2bua", victim.Number); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d calls up; killed %s", calls, victim.Name)
		(<-done).mustPass(t, calls) // every BYE → 200 on both legs, through the surviving replica
		ph.passed(callee, "dave")
		if err := l.Start(ctx, "b2bua", victim.Number); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a b2bua replica killed with 20 calls ringing", func(t *testing.T) {
		ph.t = t
		const calls = 20
		// Every ringing call is held by the replica that will die: the other
		// one is stopped while they are set up, and started again before the kill.
		holder, other := replicas[0], replicas[1]
		if err := l.Stop(ctx, "b2bua", other.Number); err != nil {
			t.Fatal(err)
		}
		erin := ph.port()
		ph.register("erin", erin)
		callees := ph.sipp("testdata/ring.xml", erin, calls)
		rung := ph.edgeCount("INVITE", "180")
		done := make(chan sippResult, 1)
		go func() { done <- ph.call("testdata/caller-fails.xml", ph.port(), "erin", calls, "-r", "20") }()
		ph.await(func() bool { return ph.edgeCount("INVITE", "180")-rung >= calls }, "every call ringing")
		if err := l.Start(ctx, "b2bua", other.Number); err != nil {
			t.Fatal(err)
		}
		if err := l.Kill(ctx, "b2bua", holder.Number); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		res := <-done
		res.mustPass(t, calls) // every caller got a final response (500 from the edge)
		ended := time.Since(killed)
		ph.passed(callees, "erin's phones") // every one got its CANCEL
		t.Logf("%d ringing calls held by %s: every caller answered and every callee CANCELled %v after the kill", calls, holder.Name, ended.Round(time.Millisecond))
		if ended > 10*senderCheck {
			t.Fatalf("callers answered %v after the kill, want within %v (10 × --sender-check)", ended, 10*senderCheck)
		}
	})
}
