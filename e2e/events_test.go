package e2e_test

import (
	"context"
	"testing"
)

// TestSubscriptionServerLab: the subscription-server profile with two events
// replicas: SIPp watchers on the host subscribe to presence, take the NOTIFY,
// unsubscribe and take the last one (bench/sipp/subscribe.xml), whichever
// replica serves each request — the subscriptions are in Redis.
func TestSubscriptionServerLab(t *testing.T) {
	ctx := context.Background()
	l := upLab(t, "subscription-server", nil)
	if err := l.Scale(ctx, "events", 2); err != nil {
		t.Fatal(err)
	}
	host, err := l.HostIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ph := phones{t: t, l: l, host: host}
	ph.call("../bench/sipp/subscribe.xml", ph.port(), "erin", 20, "-r", "10").mustPass(t, 20)
}
