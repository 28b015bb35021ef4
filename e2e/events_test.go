package e2e_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/siphon-lab/siphon/pkg/testutil"
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

	// A PUBLISH (RFC 3903) reaches every watcher, whichever replica holds
	// its subscription: ten SIPp watchers of fay subscribe, then a SIPp
	// publisher sets her presence; each watcher needs the published PIDF
	// in a NOTIFY before it unsubscribes.
	subscribed := ph.edgeCount("SUBSCRIBE", "200")
	path, _ := filepath.Abs("../bench/sipp/watch.xml")
	watchers := testutil.Process(t, testutil.Binary(t, "sipp", "sip-tester"), "-sf", path, "-s", "fay", "-m", "10", "-r", "20",
		"-i", host, "-p", strconv.Itoa(ph.port()), "-nostdin", "-timeout", "90s", "-timeout_error", l.SIPAddr("udp"))
	ph.await(func() bool { return ph.edgeCount("SUBSCRIBE", "200") >= subscribed+10 }, "ten watchers of fay subscribed")
	ph.call("../bench/sipp/publish.xml", ph.port(), "fay", 1).mustPass(t, 1)
	ph.passed(watchers, "watchers of fay")
}
