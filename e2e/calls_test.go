package e2e_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

// TestCallsSurviveUASKill: SIPp sets up calls through the lab against two uas
// replicas; once every call is up, one replica is killed; every call still
// ends with BYE → 200, because the dialogs live in Redis.
func TestCallsSurviveUASKill(t *testing.T) {
	for _, profile := range []string{"call-server", "full-uas"} {
		t.Run(profile, func(t *testing.T) {
			ctx := context.Background()
			l := upLab(t, profile, nil)
			if err := l.Scale(ctx, "uas", 2); err != nil {
				t.Fatal(err)
			}
			replicas, err := l.Replicas(ctx, "uas")
			if err != nil || len(replicas) != 2 {
				t.Fatalf("uas replicas: %v %v", replicas, err)
			}
			const calls = 40
			sippDone := make(chan string, 1)
			go func() {
				// SIPp's own uac: INVITE with SDP, ACK, a 10 s call, BYE.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, "sipp", "-sn", "uac", "-d", "10000", "-m", strconv.Itoa(calls), "-r", "20",
					"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "90s", "-timeout_error", l.SIPAddr("udp"))
				cmd.Dir = t.TempDir()
				out, _ := cmd.CombinedOutput()
				sippDone <- string(out)
			}()
			// Wait until every call is answered, then kill the replica that
			// answered the first of them.
			answered := func() []float64 {
				var n []float64
				for _, r := range replicas {
					v, _ := testutil.Metric(t, "http://"+r.Metrics+"/metrics", "siphon_sip_responses_total",
						`method="INVITE"`, `code="200"`, `role="uas"`)
					n = append(n, v)
				}
				return n
			}
			deadline := time.Now().Add(60 * time.Second)
			for n := answered(); n[0]+n[1] < calls; n = answered() {
				if time.Now().After(deadline) {
					t.Fatalf("calls answered per replica %v, want %d in all", n, calls)
				}
				time.Sleep(100 * time.Millisecond)
			}
			perReplica := answered()
			victim := 0
			if perReplica[1] > perReplica[0] {
				victim = 1
			}
			if err := l.Kill(ctx, "uas", replicas[victim].Number); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d calls up (per replica %v); killed %s, which answered %v of them",
				calls, perReplica, replicas[victim].Name, perReplica[victim])
			out := <-sippDone
			if !regexp.MustCompile(`Successful call\s+\|\s+\d+\s+\|\s+`+strconv.Itoa(calls)+`\s`).MatchString(out) ||
				!regexp.MustCompile(`Failed call\s+\|\s+\d+\s+\|\s+0\s`).MatchString(out) {
				t.Fatalf("calls did not all end with BYE → 200 after the kill:\n%s", testutil.Tail(out, 3000))
			}
			survivor := replicas[1-victim]
			byes, _ := testutil.Metric(t, "http://"+survivor.Metrics+"/metrics", "siphon_sip_responses_total",
				`method="BYE"`, `code="200"`, `role="uas"`)
			if byes != calls {
				t.Fatalf("surviving replica answered %v BYEs with 200, want all %d", byes, calls)
			}
		})
	}
}
