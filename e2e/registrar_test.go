package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/e2e/lab"
	"github.com/siphon-lab/siphon/pkg/testutil"
)

func upLab(t *testing.T, profile string, env map[string]string) *lab.Lab {
	t.Helper()
	// The suites load the edge from one host address: no per-source limit
	// unless a test sets one.
	withDefaults := map[string]string{"SIPHON_UDP_RATE_LIMIT": "0", "SIPHON_STREAM_RATE_LIMIT": "0"}
	for k, v := range env {
		withDefaults[k] = v
	}
	l, err := lab.Up(context.Background(), lab.Options{Profile: profile, Env: withDefaults, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// Why it failed is often in a replica's log, not the test's.
			if logs, err := l.Logs(context.Background(), 60); err == nil {
				t.Logf("the lab's last log lines:\n%s", logs)
			}
		}
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return l
}

// TestRegistrarDigest: SIPp registers with digest through a registrar lab.
func TestRegistrarDigest(t *testing.T) {
	ctx := context.Background()
	l := upLab(t, "registrar", map[string]string{"SIPHON_AUTH": "true"})
	{
		csv := filepath.Join(t.TempDir(), "users.csv")
		os.WriteFile(csv, []byte("SEQUENTIAL\n"+
			"alice;[authentication username=alice password=secret123]\n"+
			"bob;[authentication username=bob password=pass456]\n"), 0o600)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		scenario, _ := filepath.Abs("../bench/sipp/register-auth.xml")
		cmd := exec.CommandContext(ctx, "sipp", "-sf", scenario, "-inf", csv, "-m", "2", "-r", "10",
			"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "30s", "-timeout_error", l.SIPAddr("udp"))
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil || !regexp.MustCompile(`Successful call\s+\|\s+\d+\s+\|\s+2\s`).Match(out) {
			t.Fatalf("SIPp REGISTER with digest through the lab: %v\n%s", err, testutil.Tail(string(out), 2000))
		}
	}
}

// TestRegistrarKillReplica: three registrar replicas take a steady REGISTER load
// while one is killed; no REGISTER that got 200 is missing afterwards, and the
// rest of the run is answered.
func TestRegistrarKillReplica(t *testing.T) {
	ctx := context.Background()
	l := upLab(t, "registrar", nil)
	if err := l.Scale(ctx, "registrar", 3); err != nil {
		t.Fatal(err)
	}
	{
		const total, rate = 1500, 150 // 10 s
		results := steadyRegisters(t, l.SIPAddr("udp"), total, rate, func(sent int) {
			if sent == total/2 {
				if err := l.Kill(ctx, "registrar", 2); err != nil {
					t.Errorf("kill: %v", err)
				}
				t.Logf("killed registrar 2 after %d REGISTERs", sent)
			}
		})
		ok, failed, unanswered := 0, 0, 0
		for _, r := range results {
			switch {
			case r.code == 200:
				ok++
			case r.code == 0:
				unanswered++
			default:
				failed++
			}
		}
		t.Logf("%d REGISTERs: %d answered 200, %d answered with an error, %d unanswered", total, ok, failed, unanswered)
		if unanswered > 0 {
			t.Errorf("%d REGISTERs got no answer at all", unanswered)
		}
		// The edge answers what the dead replica held with 408 after its role
		// timeout; everything sent a second after the kill must succeed.
		for i, r := range results[total/2+rate:] {
			if r.code != 200 {
				t.Fatalf("REGISTER %d, sent after the kill settled, got %d", total/2+rate+i, r.code)
			}
		}
		missing := 0
		for _, r := range results {
			if r.code != 200 {
				continue
			}
			if !registered(t, l.SIPAddr("udp"), r.user) {
				missing++
				t.Errorf("%s got 200 but has no binding", r.user)
			}
		}
		if missing > 0 {
			t.Fatalf("%d of %d acknowledged registrations lost", missing, ok)
		}
	}
}

type regResult struct {
	user string
	code int
}

// steadyRegisters sends total REGISTERs for distinct users at rate per second
// from one UDP socket and returns each one's final status (0: none within 10 s).
// onSend runs after each send.
func steadyRegisters(t *testing.T, target string, total, rate int, onSend func(sent int)) []regResult {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, _ := net.ResolveUDPAddr("udp", target)
	results := make([]regResult, total)
	var mu sync.Mutex
	done := make(chan struct{})
	callRe := regexp.MustCompile(`(?m)^Call-ID: load-(\d+)\r$`)
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(12 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			var code, idx int
			if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil || code < 200 {
				continue
			}
			m := callRe.FindStringSubmatch(msg)
			if m == nil {
				continue
			}
			fmt.Sscan(m[1], &idx)
			mu.Lock()
			if idx < total && results[idx].code == 0 {
				results[idx].code = code
			}
			mu.Unlock()
		}
	}()
	local := conn.LocalAddr().String()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range total {
		<-tick.C
		user := fmt.Sprintf("load%05d", i)
		mu.Lock()
		results[i].user = user
		mu.Unlock()
		msg := "REGISTER sip:" + target + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";rport;branch=z9hG4bKload" + fmt.Sprint(i) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.com>;tag=l" + fmt.Sprint(i) + "\r\n" +
			"To: <sip:" + user + "@example.com>\r\nCall-ID: load-" + fmt.Sprint(i) + "\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: <sip:" + user + "@192.0.2.1>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.WriteTo([]byte(msg), raddr); err != nil {
			t.Fatal(err)
		}
		onSend(i + 1)
	}
	tick.Stop()
	// Retransmissions are the client's job over UDP; this load sends each
	// REGISTER once, so wait out the edge's role timeout for the stragglers.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		pending := 0
		for _, r := range results {
			if r.code == 0 {
				pending++
			}
		}
		mu.Unlock()
		if pending == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return append([]regResult(nil), results...)
}

// registered asks the lab for user's bindings (a REGISTER without Contact).
func registered(t *testing.T, target, user string) bool {
	t.Helper()
	conn, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := "REGISTER sip:" + target + " SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";rport;branch=z9hG4bKq" + user + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.com>;tag=q\r\nTo: <sip:" + user + "@example.com>\r\n" +
		"Call-ID: query-" + user + "\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
	buf := make([]byte, 65535)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		res := string(buf[:n])
		if !strings.HasPrefix(res, "SIP/2.0 200 ") {
			t.Fatalf("query for %s: %s", user, strings.SplitN(res, "\r\n", 2)[0])
		}
		return strings.Contains(res, "Contact: <sip:"+user+"@192.0.2.1>")
	}
	t.Fatalf("query for %s: no answer", user)
	return false
}
