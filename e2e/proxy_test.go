package e2e_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/e2e/lab"
	"github.com/siphon-lab/siphon/pkg/testutil"
)

// senderCheck is the lab edge's --sender-check.
const senderCheck = time.Second

// TestProxyLab runs the proxy profile once for every proxy suite test: SIPp
// phones on the host register through the lab's edge and call each other
// through the proxy, with two proxy replicas, one of which is killed twice.
// The phones bind the host's address on the lab network: the edge in its
// container reaches them there (127.0.0.1 would be its own).
func TestProxyLab(t *testing.T) {
	ctx := context.Background()
	l := upLab(t, "proxy", map[string]string{
		"SIPHON_DOMAIN": "example.com",
		// How soon the edge notices a proxy replica gone: the bound below is 10 of these.
		"SIPHON_SENDER_CHECK": senderCheck.String(),
	})
	host, err := l.HostIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ph := phones{t: t, l: l, host: host}

	t.Run("two phones register and call", func(t *testing.T) {
		ph.t = t
		bob, alice := ph.port(), ph.port()
		ph.register("bob", bob)
		ph.register("alice", alice)
		callee := ph.sipp("../bench/sipp/proxy-uas.xml", bob, 5)
		ph.call("../bench/sipp/proxy-uac.xml", alice, "bob", 5, "-d", "500").mustPass(t, 5)
		ph.passed(callee, "bob")
	})

	t.Run("fork to three phones", func(t *testing.T) {
		ph.t = t
		ports := []int{ph.port(), ph.port(), ph.port()}
		for _, p := range ports {
			ph.register("carol", p)
		}
		answers := ph.sipp("../bench/sipp/proxy-uas.xml", ports[0], 1)
		ring1 := ph.sipp("testdata/ring.xml", ports[1], 1)
		ring2 := ph.sipp("testdata/ring.xml", ports[2], 1)
		ph.call("../bench/sipp/proxy-uac.xml", ph.port(), "carol", 1, "-d", "500").mustPass(t, 1)
		ph.passed(answers, "carol's phone that answered")
		ph.passed(ring1, "carol's first ringing phone") // each got the CANCEL
		ph.passed(ring2, "carol's second ringing phone")
	})

	t.Run("a two-actor scenario registers and calls through the lab", func(t *testing.T) {
		ph.t = t
		ph.scenario("../scenarios/register-and-call.json", "--calls", "5", "--concurrency", "5")
	})

	if err := l.Scale(ctx, "proxy", 2); err != nil {
		t.Fatal(err)
	}
	replicas, err := l.Replicas(ctx, "proxy")
	if err != nil || len(replicas) != 2 {
		t.Fatalf("proxy replicas: %v %v", replicas, err)
	}

	t.Run("a proxy replica killed with 40 calls up", func(t *testing.T) {
		ph.t = t
		ph.killWithCallsUp(ctx, "proxy", replicas[0], "../bench/sipp/proxy-uas.xml", "dave")
	})

	t.Run("a proxy replica killed with 20 calls ringing", func(t *testing.T) {
		ph.t = t
		ph.killWithCallsRinging(ctx, "proxy", replicas[0], replicas[1], "erin")
	})
}

// killWithCallsUp: 40 calls to user, answered by a SIPp phone running
// callee, are up when the service's replica victim is SIGKILLed; every BYE
// must still get its 200 on both sides, through the surviving replica.
func (p phones) killWithCallsUp(ctx context.Context, service string, victim lab.Replica, callee, user string) {
	p.t.Helper()
	const calls = 40
	port := p.port()
	p.register(user, port)
	phone := p.sipp(callee, port, calls)
	answered := p.edgeCount("INVITE", "200") // the 200s the edge sends: one per call, the caller's
	done := make(chan sippResult, 1)
	go func() {
		done <- p.call("../bench/sipp/proxy-uac.xml", p.port(), user, calls, "-d", "8000", "-r", "20")
	}()
	p.await(func() bool { return p.edgeCount("INVITE", "200")-answered >= calls }, "every call answered")
	if err := p.l.Kill(ctx, service, victim.Number); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("%d calls up; killed %s", calls, victim.Name)
	(<-done).mustPass(p.t, calls)
	p.passed(phone, user)
	if err := p.l.Start(ctx, service, victim.Number); err != nil {
		p.t.Fatal(err)
	}
}

// killWithCallsRinging: 20 calls to user ring, all held by the service's
// replica holder (other is stopped while they are set up and started again
// before the kill); holder is SIGKILLed; every caller must get its final
// response (500 from the edge) and every phone its CANCEL within 10 of the
// edge's --sender-check periods.
func (p phones) killWithCallsRinging(ctx context.Context, service string, holder, other lab.Replica, user string) {
	p.t.Helper()
	const calls = 20
	if err := p.l.Stop(ctx, service, other.Number); err != nil {
		p.t.Fatal(err)
	}
	port := p.port()
	p.register(user, port)
	phones := p.sipp("testdata/ring.xml", port, calls)
	rung := p.edgeCount("INVITE", "180")
	done := make(chan sippResult, 1)
	go func() { done <- p.call("testdata/caller-fails.xml", p.port(), user, calls, "-r", "20") }()
	p.await(func() bool { return p.edgeCount("INVITE", "180")-rung >= calls }, "every call ringing")
	if err := p.l.Start(ctx, service, other.Number); err != nil {
		p.t.Fatal(err)
	}
	if err := p.l.Kill(ctx, service, holder.Number); err != nil {
		p.t.Fatal(err)
	}
	killed := time.Now()
	(<-done).mustPass(p.t, calls)
	ended := time.Since(killed)
	p.passed(phones, user+"'s phones")
	p.t.Logf("%d ringing calls held by %s: every caller answered and every callee CANCELled %v after the kill", calls, holder.Name, ended.Round(time.Millisecond))
	// The bound: 10 s, ten of the edge's --sender-check periods.
	if ended > 10*senderCheck {
		p.t.Fatalf("callers answered %v after the kill, want within %v (10 × --sender-check)", ended, 10*senderCheck)
	}
}

// phones runs SIPp phones on the host against a lab.
type phones struct {
	t    *testing.T
	l    *lab.Lab
	host string
}

// port is a free UDP port on the host's lab address.
func (p phones) port() int {
	p.t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(p.host, "0"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// register binds user@example.com to the phone at port.
func (p phones) register(user string, port int) {
	p.t.Helper()
	res := p.run("../bench/sipp/proxy-register.xml", port, user, 1)
	res.mustPass(p.t, 1)
}

// sipp starts a SIPp phone at port that takes calls calls.
func (p phones) sipp(scenario string, port, calls int) *testutil.Proc {
	p.t.Helper()
	path, _ := filepath.Abs(scenario)
	bin := testutil.Binary(p.t, "sipp", "sip-tester")
	return testutil.Process(p.t, bin, "-sf", path, "-i", p.host, "-p", strconv.Itoa(port), "-m", strconv.Itoa(calls),
		"-nostdin", "-timeout", "90s", "-timeout_error")
}

// call makes calls to user from the phone at port, through the edge.
func (p phones) call(scenario string, port int, user string, calls int, extra ...string) sippResult {
	p.t.Helper()
	return p.run(scenario, port, user, calls, extra...)
}

func (p phones) run(scenario string, port int, service string, calls int, extra ...string) sippResult {
	p.t.Helper()
	path, _ := filepath.Abs(scenario)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-sf", path, "-s", service, "-m", strconv.Itoa(calls), "-i", p.host, "-p", strconv.Itoa(port),
		"-nostdin", "-timeout", "90s", "-timeout_error"}, extra...)
	target := p.l.SIPAddr("udp")
	for i, a := range extra {
		if a == "-t" && i+1 < len(extra) && extra[i+1] == "t1" { // SIPp over TCP: the edge's TCP address
			target = p.l.SIPAddr("tcp")
		}
	}
	cmd := exec.CommandContext(ctx, "sipp", append(args, target)...)
	cmd.Dir = p.t.TempDir()
	out, _ := cmd.CombinedOutput()
	return sippResult{out: string(out)}
}

// scenario runs a scenario file of scenarios/ with `siphond run` on the
// host (built here from this checkout): its actors bind the host's lab
// address, its 127.0.0.1:5070 is the lab's edge; it must pass.
func (p phones) scenario(file string, args ...string) {
	p.t.Helper()
	dir := p.t.TempDir()
	bin := filepath.Join(dir, "siphond")
	build := exec.Command("go", "build", "-o", bin, "../cmd/siphond")
	if out, err := build.CombinedOutput(); err != nil {
		p.t.Fatalf("go build siphond: %v\n%s", err, out)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		p.t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "127.0.0.1:5070", p.l.SIPAddr("udp"))
	text = strings.ReplaceAll(text, `"bind": "127.0.0.1:0"`, `"bind": "`+net.JoinHostPort(p.host, "0")+`"`)
	path := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"run", path, "--udp-bind", net.JoinHostPort(p.host, "0")}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("siphond run %s against the lab: %v\n%s", file, err, out)
	}
}

// passed waits for a SIPp phone to end and requires its scenario to have passed.
func (p phones) passed(proc *testutil.Proc, name string) {
	p.t.Helper()
	select {
	case <-proc.Done():
		if err := proc.Err(); err != nil {
			p.t.Fatalf("SIPp %s failed its scenario: %v", name, err)
		}
	case <-time.After(100 * time.Second): // its -timeout ends it before
		p.t.Fatalf("SIPp %s still running", name)
	}
}

// edgeCount is how many code responses to method the edge has sent.
func (p phones) edgeCount(method, code string) float64 {
	v, _ := testutil.Metric(p.t, p.l.MetricsURL(), "siphon_sip_responses_total", `role="edge"`, `method="`+method+`"`, `code="`+code+`"`)
	return v
}

// await polls cond (a metric over HTTP) until it holds; SIPp's -timeout bounds the calls behind it.
func (p phones) await(cond func() bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s within 60s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sippResult is what a SIPp client run printed.
type sippResult struct{ out string }

func (r sippResult) mustPass(t *testing.T, calls int) {
	t.Helper()
	if !regexp.MustCompile(`Successful call\s+\|\s+\d+\s+\|\s+`+strconv.Itoa(calls)+`\s`).MatchString(r.out) ||
		!regexp.MustCompile(`Failed call\s+\|\s+\d+\s+\|\s+0\s`).MatchString(r.out) {
		t.Fatalf("SIPp: want %d successful calls, none failed:\n%s", calls, testutil.Tail(r.out, 3000))
	}
}
