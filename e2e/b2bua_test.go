package e2e_test

import (
	"context"
	"testing"
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
		ph.killWithCallsUp(ctx, "b2bua", replicas[0], "../bench/sipp/b2bua-uas.xml", "dave")
	})

	t.Run("a b2bua replica killed with 20 calls ringing", func(t *testing.T) {
		ph.t = t
		ph.killWithCallsRinging(ctx, "b2bua", replicas[0], replicas[1], "erin")
	})
}
