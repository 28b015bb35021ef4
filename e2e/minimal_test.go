package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/e2e/lab"
	"github.com/siphon-lab/siphon/pkg/testutil"
)

// TestMinimal runs the minimal profile as containers: OPTIONS over UDP, TCP,
// TLS, WS and WSS (RFC 7118, ports published by compose); the edge's 503 when the uas stops and 200 when it is back; three uas
// replicas sharing 300 OPTIONS.
func TestMinimal(t *testing.T) {
	ctx := context.Background()
	config := t.TempDir()
	testutil.SelfSigned(t, config)
	l, err := lab.Up(ctx, lab.Options{
		Profile: "minimal",
		Env: map[string]string{
			"SIPHON_CONFIG_DIR": config,
			"SIPHON_TLS_CERT":   "/config/cert.pem",
			"SIPHON_TLS_KEY":    "/config/key.pem",
			"SIPHON_WSS_BIND":   "0.0.0.0:8443",
			// 300 OPTIONS from the host below: one source.
			"SIPHON_UDP_RATE_LIMIT": "0",
		},
		Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	c := newClient(t)

	for _, transport := range []string{"udp", "tcp", "tls", "ws", "wss"} {
		t.Run("OPTIONS/"+transport, func(t *testing.T) {
			res, err := options(c, transport, l.SIPAddr(transport), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 || res.GetHeader("Allow").Value() != "OPTIONS" {
				t.Fatalf("got %d Allow=%v, want 200 with Allow: OPTIONS", res.StatusCode, res.GetHeader("Allow"))
			}
		})
	}

	t.Run("StoppedUASIs503", func(t *testing.T) {
		if err := l.Stop(ctx, "uas", 1); err != nil {
			t.Fatal(err)
		}
		// The edge's --role-timeout is 5 s: a 503 inside a second is NATS's no-responders.
		res, err := options(c, "udp", l.SIPAddr("udp"), time.Second)
		if err != nil {
			t.Fatalf("no answer within 1 s of the uas stopping: %v", err)
		}
		if res.StatusCode != 503 {
			t.Fatalf("got %d, want 503", res.StatusCode)
		}
	})
	t.Run("StartedUASIs200", func(t *testing.T) {
		if err := l.Start(ctx, "uas", 1); err != nil {
			t.Fatal(err)
		}
		res, err := options(c, "udp", l.SIPAddr("udp"), 5*time.Second)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("after restart: %v %v", res, err)
		}
	})
	t.Run("ThreeReplicasShare300", func(t *testing.T) {
		edgeStarted, err := l.StartedAt(ctx, l.Edge(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Scale(ctx, "uas", 3); err != nil {
			t.Fatal(err)
		}
		if now, _ := l.StartedAt(ctx, l.Edge(), 1); now != edgeStarted {
			t.Fatalf("scaling the uas restarted the edge (started %s, now %s)", edgeStarted, now)
		}
		replicas, err := l.Replicas(ctx, "uas")
		if err != nil {
			t.Fatal(err)
		}
		if len(replicas) != 3 {
			t.Fatalf("%d uas replicas, want 3", len(replicas))
		}
		before := make([]float64, len(replicas))
		for i, r := range replicas {
			before[i] = optionsServed(t, r)
		}
		for i := range 300 {
			res, err := options(c, "udp", l.SIPAddr("udp"), 5*time.Second)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("OPTIONS %d: %v %v", i, res, err)
			}
		}
		total := 0.0
		for i, r := range replicas {
			served := optionsServed(t, r) - before[i]
			t.Logf("%s answered %v", r.Name, served)
			if served == 0 {
				t.Errorf("%s answered none of the 300", r.Name)
			}
			total += served
		}
		if total != 300 {
			t.Fatalf("replicas answered %v OPTIONS, want 300", total)
		}
	})
}

func newClient(t *testing.T) *sipgo.Client { return testutil.SIPClient(t) }

func options(c *sipgo.Client, transport, target string, within time.Duration) (*sip.Response, error) {
	return testutil.Send(c, sip.OPTIONS, transport, target, within)
}

// optionsServed reads siphon_sip_responses_total for OPTIONS 200 from a replica.
func optionsServed(t *testing.T, r lab.Replica) float64 {
	t.Helper()
	if r.Metrics == "" {
		t.Fatalf("%s publishes no metrics port", r.Name)
	}
	v, _ := testutil.Metric(t, "http://"+r.Metrics+"/metrics", "siphon_sip_responses_total",
		`method="OPTIONS"`, `code="200"`, `role="uas"`)
	return v
}
