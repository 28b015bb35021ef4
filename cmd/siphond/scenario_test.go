package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// writeScenario writes a scenario file with the peer's address put in.
func writeScenario(t *testing.T, src, peer string) string {
	t.Helper()
	return writeScenarioAs(t, "scenario.json", src, peer)
}

func writeScenarioAs(t *testing.T, name, src, peer string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(src, "127.0.0.1:5070", peer)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScenarioCall: siphond's own example (INVITE, sleep 1000, BYE to the
// same URI) run with --scenario once the daemon is up: the SIPp UAS gets
// the ACK of its 2xx and then the BYE inside the dialog (its scenario fails
// otherwise), and /metrics counts the steps.
func TestScenarioCall(t *testing.T) {
	uas, addr := sippUAS(t, "uas-answer.xml", 0)
	src, err := os.ReadFile("../../scenarios/basic-call.json")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, true, "--mode", "minimal", "--scenario", writeScenario(t, string(src), addr))
	passed(t, uas, "UAS")
	deadline := time.Now().Add(10 * time.Second)
	for p.counter(t, "siphon_scenario_steps_total", `type="send"`, `outcome="ok"`) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("siphon_scenario_steps_total{send,ok} %v, want 2", p.counter(t, "siphon_scenario_steps_total", `type="send"`, `outcome="ok"`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.counter(t, "siphon_scenario_steps_total", `type="expect"`, `outcome="ok"`); n != 2 {
		t.Fatalf("expect steps ok: %v, want 2", n)
	}
}

// runOnce runs `siphond run file` with its own edge on a free port; the
// NAME=value arguments first are added to its environment, the rest are flags.
func runOnce(t *testing.T, file string, args ...string) (code int, out string) {
	t.Helper()
	port := strconv.Itoa(testutil.FreePort(t))
	var env []string
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
		env, args = append(env, args[0]), args[1:] // NAME=value first: the environment
	}
	cmd := exec.Command(siphondBin, append([]string{"run", file, "--udp-bind", "127.0.0.1:" + port, "--tcp-bind", "127.0.0.1:" + port}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stdout.String() + stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String() + stderr.String()
}

// TestScenarioRun: `siphond run` is one shot for CI: 0 when every step held
// (an OPTIONS that expects 200 from a peer answering 200), 1 when one did not
// (the same expecting 486, the report naming both codes), 2 for a file it
// cannot use (the field named).
func TestScenarioRun(t *testing.T) {
	peer := start(t, true, "--mode", "minimal")
	options := `{"steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:lab@127.0.0.1:5070"}, {"type": "expect", "status": EXPECTED}]}`
	code, out := runOnce(t, writeScenario(t, strings.Replace(options, "EXPECTED", "200", 1), peer.sip))
	if code != 0 || !strings.Contains(out, "scenario passed") {
		t.Fatalf("expecting 200 from a peer answering 200: exit %d, want 0:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenario(t, strings.Replace(options, "EXPECTED", "486", 1), peer.sip))
	if code != 1 || !strings.Contains(out, "got 200 OK, expected 486") {
		t.Fatalf("expecting 486 from a peer answering 200: exit %d, want 1 and both codes in the report:\n%s", code, out)
	}
	// The YAML form behaves like the JSON.
	yamlOptions := "steps:\n  - type: send\n    method: OPTIONS\n    uri: sip:lab@127.0.0.1:5070\n  - type: expect\n    status: EXPECTED\n"
	code, out = runOnce(t, writeScenarioAs(t, "options.yaml", strings.Replace(yamlOptions, "EXPECTED", "200", 1), peer.sip))
	if code != 0 {
		t.Fatalf("the YAML form expecting 200: exit %d, want 0:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenarioAs(t, "options.yaml", strings.Replace(yamlOptions, "EXPECTED", "486", 1), peer.sip))
	if code != 1 || !strings.Contains(out, "got 200 OK, expected 486") {
		t.Fatalf("the YAML form expecting 486: exit %d, want 1:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenarioAs(t, "bad.yaml", "steps:\n  - type: send\n    method: \"OPTIONS\n", peer.sip))
	if code != 2 || !strings.Contains(out, "line 3") {
		t.Fatalf("broken YAML: exit %d, want 2 naming line 3:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenarioAs(t, "bad.yaml", "steps:\n  - type: send\n    uri: sip:lab@127.0.0.1\n", peer.sip))
	if code != 2 || !strings.Contains(out, "steps[0]: (send) method") {
		t.Fatalf("YAML without a method: exit %d, want 2 naming the field:\n%s", code, out)
	}
	for _, bad := range []struct{ src, field string }{
		{`{"steps": [{"type": "send", "uri": "sip:lab@127.0.0.1"}]}`, "steps[0]"},
		{`{"steps": [{"type": "dance"}]}`, `type "dance"`},
		{`{"steps": [{"type": "sleep", "ms": "long"}]}`, "field steps.ms"},
		{"{\n  \"steps\": [{\"type\": \"sleep\",\n  \"ms\": \"long\"}]\n}", "line 3: field steps.ms"},
		{`{"steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:a@b", "colour": "red"}]}`, `unknown field "colour"`},
		{"{\n  \"steps\": [\n    {\"type\": \"expect\", \"status\": \"2yy\"}\n  ]\n}", `steps[0]: (expect) status: "2yy"`},
	} {
		code, out := runOnce(t, writeScenario(t, bad.src, peer.sip))
		if code != 2 || !strings.Contains(out, bad.field) {
			t.Errorf("scenario %s: exit %d, want 2 naming %s:\n%s", bad.src, code, bad.field, out)
		}
	}
}

// TestScenarioVariables: ${name} in any field, from the environment or from
// a capture of an earlier response (a header or the body, a regex's first
// group); an unknown one fails its step.
func TestScenarioVariables(t *testing.T) {
	peer := start(t, true, "--mode", "minimal")
	src := `{"steps": [
  {"type": "send", "method": "OPTIONS", "uri": "sip:${SCENARIO_USER}@127.0.0.1:5070"},
  {"type": "capture", "header": "Server", "regex": "siphond/(\\S+)", "var": "version"},
  {"type": "capture", "header": "To", "regex": "tag=([A-Za-z0-9]+)", "var": "tag"},
  {"type": "send", "method": "OPTIONS", "uri": "sip:v${version}@127.0.0.1:5070", "headers": [{"name": "X-Seen-Tag", "value": "${tag}"}]},
  {"type": "expect", "status": 200}
]}`
	code, out := runOnce(t, writeScenario(t, src, peer.sip), "SCENARIO_USER=lab")
	if code != 0 || !strings.Contains(out, "send OPTIONS sip:lab@") || !strings.Contains(out, "version=0.2-refactored") ||
		!strings.Contains(out, "send OPTIONS sip:v0.2-refactored@") {
		t.Fatalf("variables from the environment and a capture: exit %d:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenario(t, `{"steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:${NOBODY_SET_THIS}@127.0.0.1:5070"}]}`, peer.sip))
	if code != 1 || !strings.Contains(out, "${NOBODY_SET_THIS}") {
		t.Fatalf("an unknown variable: exit %d, want 1 naming it:\n%s", code, out)
	}
	code, out = runOnce(t, writeScenario(t, `{"steps": [{"type": "capture", "regex": "(", "var": "x"}]}`, peer.sip))
	if code != 2 || !strings.Contains(out, "(capture) regex") {
		t.Fatalf("a bad capture regex: exit %d, want 2 naming it:\n%s", code, out)
	}
}

// TestScenarioDigest: credentials answer a challenge by themselves (RFC
// 3261 §22.2): a register step's 401 from the registrar (--auth) and an
// INVITE's 407 from the proxy; without them the challenge is the final.
func TestScenarioDigest(t *testing.T) {
	reg := start(t, true, "--mode", "registrar", "--auth")
	src := `{"auth": {"username": "alice", "password": "secret123"}, "contact_uri": "sip:alice@192.0.2.50:5060",
  "steps": [{"type": "register", "uri": "sip:127.0.0.1:5070", "user": "alice", "expires": 300}, {"type": "expect", "status": 200}]}`
	if code, out := runOnce(t, writeScenario(t, src, reg.sip)); code != 0 || !strings.Contains(out, "register alice") {
		t.Fatalf("register with digest: exit %d, want 0:\n%s", code, out)
	}
	noAuth := strings.Replace(src, `"auth": {"username": "alice", "password": "secret123"}, `, "", 1)
	if code, out := runOnce(t, writeScenario(t, noAuth, reg.sip)); code != 1 || !strings.Contains(out, "got 401") {
		t.Fatalf("register without credentials: exit %d, want 1 with the 401:\n%s", code, out)
	}

	proxy := start(t, true, "--mode", "proxy", "--domain", "example.com", "--auth")
	invite := `{"local_uri": "sip:alice@example.com", "auth": {"username": "alice", "password": "secret123"},
  "steps": [{"type": "send", "method": "INVITE", "uri": "sip:nobody@example.com", "transport": "udp", "body": "v=0\r\n"}, {"type": "expect", "status": 404}]}`
	src = strings.Replace(invite, `"transport": "udp"`, `"transport": "udp", "headers": [{"name": "Route", "value": "<sip:127.0.0.1:5070;lr>"}]`, 1)
	if code, out := runOnce(t, writeScenario(t, src, proxy.sip)); code != 0 {
		t.Fatalf("INVITE through the proxy with digest: exit %d, want 0 (the 407 answered, then 404):\n%s", code, out)
	}
	noAuth = strings.Replace(src, `"auth": {"username": "alice", "password": "secret123"},`, "", 1)
	if code, out := runOnce(t, writeScenario(t, noAuth, proxy.sip)); code != 1 || !strings.Contains(out, "got 407") {
		t.Fatalf("INVITE without credentials: exit %d, want 1 with the 407:\n%s", code, out)
	}
}

// TestScenarioCalls: --calls with --rate and --concurrency runs the
// scenario as many calls (progress on stderr, a summary on stdout), each
// with its row of an --inf CSV as variables; --report writes JUnit XML or
// voip_patrol-style JSON; one failed call makes the exit 1.
func TestScenarioCalls(t *testing.T) {
	peer := start(t, true, "--mode", "minimal")
	file := writeScenario(t, `{"steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:${user}@127.0.0.1:5070"}, {"type": "expect", "status": "${want}"}]}`, peer.sip)
	dir := t.TempDir()
	inf := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(inf, []byte("SEQUENTIAL\nuser;want\nann;2xx\nben;2xx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	junit, report := filepath.Join(dir, "report.xml"), filepath.Join(dir, "report.json")
	code, out := runOnce(t, file, "--calls", "20", "--rate", "100", "--concurrency", "5", "--inf", inf, "--report", junit)
	if code != 0 || !strings.Contains(out, "calls: 20, 20 passed, 0 failed") {
		t.Fatalf("20 calls: exit %d, want 0 and all passed:\n%s", code, out)
	}
	xmlReport, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(xmlReport), `tests="20" failures="0"`) || strings.Count(string(xmlReport), "<testcase ") != 20 {
		t.Fatalf("JUnit report: want 20 test cases, none failed:\n%s %v", xmlReport, err)
	}
	if err := os.WriteFile(inf, []byte("user;want\nann;2xx\nben;486\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runOnce(t, file, "--calls", "4", "--rate", "100", "--inf", inf, "--report", report)
	if code != 1 || !strings.Contains(out, "2 passed, 2 failed") {
		t.Fatalf("every other call expecting 486: exit %d, want 1 and 2 failed:\n%s", code, out)
	}
	jsonReport, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(jsonReport), `"result": "FAIL"`) || !strings.Contains(string(jsonReport), "sip:ben@") {
		t.Fatalf("JSON report: want the failed calls, ben's among them:\n%s %v", jsonReport, err)
	}
	if code, out := runOnce(t, file, "--calls", "0"); code != 2 || !strings.Contains(out, "--calls") {
		t.Fatalf("--calls 0: exit %d, want 2 naming the flag:\n%s", code, out)
	}
}

// TestScenarioCallee: one run registers and then receives (SIPp #410): the
// scenario registers bob through the proxy, expects the INVITE a SIPp caller
// sends to bob@example.com, answers 180 and 200 (the proxy's Record-Route
// echoed), and takes the ACK and the BYE, which it answers 200.
func TestScenarioCallee(t *testing.T) {
	proxy := start(t, true, "--mode", "proxy", "--domain", "example.com")
	port := strconv.Itoa(testutil.FreePort(t))
	src := `{"local_uri": "sip:bob@example.com", "contact_uri": "sip:bob@127.0.0.1:PORT",
  "steps": [
    {"type": "register", "uri": "sip:example.com", "user": "bob", "expires": 300, "headers": [{"name": "Route", "value": "<sip:127.0.0.1:5070;lr>"}]},
    {"type": "expect", "status": 200},
    {"type": "expect", "request": "INVITE", "timeout_ms": 30000},
    {"type": "respond", "status": 180},
    {"type": "respond", "status": 200, "body": "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"},
    {"type": "expect", "request": "ACK"},
    {"type": "expect", "request": "BYE", "timeout_ms": 30000},
    {"type": "respond", "status": 200}
  ]}`
	file := writeScenario(t, strings.ReplaceAll(src, "PORT", port), proxy.sip)
	cmd := exec.Command(siphondBin, "run", file, "--udp-bind", "127.0.0.1:"+port, "--tcp-bind", "127.0.0.1:"+port)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for proxy.counter(t, "siphon_sip_responses_total", `role="registrar"`, `method="REGISTER"`, `code="200"`) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the scenario did not register within 10s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := sipp(t, "testdata/proxy-uac.xml", "u1", proxy.sip, 1, 1, "-s", "bob", "-d", "200")
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "scenario passed") {
			t.Fatalf("the callee scenario: %v:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the callee scenario still running:\n%s", out.String())
	}
	res.mustPass(t, 1) // the last answer reached the caller: the run lingers for its edge to send it
}

// TestScenarioSteps: an expect's header and body expressions, an optional
// expect whose failure is no failure, and repeat.
func TestScenarioSteps(t *testing.T) {
	peer := start(t, true, "--mode", "minimal")
	src := `{"steps": [
  {"type": "repeat", "count": 3, "steps": [
    {"type": "send", "method": "OPTIONS", "uri": "sip:lab@127.0.0.1:5070"},
    {"type": "expect", "status": 200, "headers": [{"name": "Allow", "value": "^OPTIONS$"}, {"name": "Server", "value": "siphond"}]}
  ]},
  {"type": "expect", "status": 486, "optional": true}
]}`
	code, out := runOnce(t, writeScenario(t, src, peer.sip))
	if code != 0 || !strings.Contains(out, "step 6 (expect status 200): ok") || !strings.Contains(out, "step 7 (expect status 486): ok: optional, not met") {
		t.Fatalf("three OPTIONS and an optional expect: exit %d, want 0:\n%s", code, out)
	}
	src = `{"steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:lab@127.0.0.1:5070"},
  {"type": "expect", "status": 200, "headers": [{"name": "Allow", "value": "INVITE"}]}]}`
	if code, out := runOnce(t, writeScenario(t, src, peer.sip)); code != 1 || !strings.Contains(out, `Allow "OPTIONS" does not match INVITE`) {
		t.Fatalf("a header that does not match: exit %d, want 1 saying so:\n%s", code, out)
	}
	if code, out := runOnce(t, writeScenario(t, `{"steps": [{"type": "repeat", "count": 0, "steps": []}]}`, peer.sip)); code != 2 || !strings.Contains(out, "(repeat)") {
		t.Fatalf("an empty repeat: exit %d, want 2:\n%s", code, out)
	}
}

// TestScenarioExamples: the examples in scenarios/ against the siphond that
// plays their peer (basic-call.json: TestScenarioCall): a forked call (two
// phones register as bob; one answers, the other gets the proxy's CANCEL and
// answers it 487), a blind transfer (alice REFERs the uas to carol, takes the
// NOTIFYs of its call to carol and hangs up; carol answers, then ends that
// call in the dialog she answered).
func TestScenarioExamples(t *testing.T) {
	for _, ex := range []struct {
		file string
		args []string
	}{
		{"register-digest.json", []string{"--mode", "registrar", "--auth"}},
		{"hold-resume.json", []string{"--mode", "call-server"}},
		{"presence.json", []string{"--mode", "subscription-server"}},
		{"register-and-call.json", []string{"--mode", "proxy", "--domain", "example.com"}},
		{"forked-call.json", []string{"--mode", "proxy", "--domain", "example.com"}},
		{"blind-transfer.json", []string{"--mode", "full-uas", "--enable-refer", "--allow-private-refer-targets"}},
	} {
		t.Run(ex.file, func(t *testing.T) {
			peer := start(t, true, ex.args...)
			src, err := os.ReadFile(filepath.Join("../../scenarios", ex.file))
			if err != nil {
				t.Fatal(err)
			}
			if code, out := runOnce(t, writeScenario(t, string(src), peer.sip)); code != 0 {
				t.Fatalf("%s against siphond %v: exit %d, want 0:\n%s", ex.file, ex.args, code, out)
			}
		})
	}
}

// TestScenarioActors: a scenario of two actors, each with its own edge:
// bob registers through the proxy, a barrier, then alice calls him there;
// as many calls at once with --calls (each of bob's calls takes the next
// INVITE, its ACK and BYE follow it); the same file run inside a daemon
// with --scenario (its steps counted in /metrics).
func TestScenarioActors(t *testing.T) {
	proxy := start(t, true, "--mode", "proxy", "--domain", "example.com")
	src, err := os.ReadFile("../../scenarios/register-and-call.json")
	if err != nil {
		t.Fatal(err)
	}
	file := writeScenario(t, string(src), proxy.sip)
	code, out := runOnce(t, file)
	if code != 0 || !strings.Contains(out, "bob step 4 (expect request INVITE): ok") || !strings.Contains(out, "alice step 2 (send INVITE sip:bob@example.com): ok: 200 OK") {
		t.Fatalf("register, then call the registered actor: exit %d, want 0:\n%s", code, out)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, out = runOnce(t, file, "--calls", "20", "--rate", "100", "--concurrency", "5", "--report", report)
	if code != 0 || !strings.Contains(out, "calls: 20, 20 passed, 0 failed") {
		t.Fatalf("20 calls of two actors: exit %d, want 0:\n%s", code, out)
	}
	data, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(data), `"passed": 20`) || !strings.Contains(string(data), `"actor": "bob"`) {
		t.Fatalf("the JSON report of 20 calls names each step's actor: %v\n%s", err, testutil.Tail(string(data), 800))
	}

	// In a daemon: its own proxy, each actor at a station of its own.
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	daemon := start(t, false, "--udp-bind", addr, "--tcp-bind", addr, "--mode", "proxy", "--domain", "example.com",
		"--scenario", writeScenario(t, string(src), addr))
	deadline := time.Now().Add(20 * time.Second)
	for daemon.counter(t, "siphon_scenario_steps_total", `type="respond"`, `outcome="ok"`) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's three responses in the daemon: %v ok", daemon.counter(t, "siphon_scenario_steps_total", `type="respond"`, `outcome="ok"`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for daemon.counter(t, "siphon_scenario_steps_total", `type="expect"`, `outcome="ok"`) != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's scenario expects: %v ok, want 6", daemon.counter(t, "siphon_scenario_steps_total", `type="expect"`, `outcome="ok"`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := daemon.counter(t, "siphon_scenario_steps_total", `type="expect"`, `outcome="failed"`); n != 0 {
		t.Fatalf("%v failed expects in the daemon's scenario", n)
	}
}

// TestScenarioWorkers: `siphond run FILE --nats URL` has its actors played by
// `siphond --role scenario` workers that join there, each with its own edge:
// one named for bob, one for whichever actor is left; the calls add up at
// the run. An actor no worker joins for stops the run with what to start,
// and a worker without --nats is bad configuration.
func TestScenarioWorkers(t *testing.T) {
	nats := testutil.NATSServer(t)
	proxy := start(t, true, "--mode", "proxy", "--domain", "example.com")
	src, err := os.ReadFile("../../scenarios/register-and-call.json")
	if err != nil {
		t.Fatal(err)
	}
	file := writeScenario(t, string(src), proxy.sip)
	for _, actor := range []string{"bob", ""} {
		start(t, true, "--role", "scenario", "--nats", nats.URL, "--scenario-actor", actor)
	}
	nats.WaitSubscribers(t, wire.ScenarioWorkers, 2, 20*time.Second)
	code, out := runOnce(t, file, "--nats", nats.URL, "--calls", "10", "--rate", "50")
	if code != 0 || !strings.Contains(out, "calls: 10, 10 passed, 0 failed") || !strings.Contains(out, "actor bob: worker") {
		t.Fatalf("10 calls played by two workers: exit %d, want 0:\n%s", code, out)
	}
	code, out = runOnce(t, file, "--nats", nats.URL)
	if code != 0 || !strings.Contains(out, "bob step 9 (respond 200): ok") || !strings.Contains(out, "scenario passed") {
		t.Fatalf("one call played by two workers: exit %d, want 0 and both actors' steps:\n%s", code, out)
	}
	lonely := writeScenarioAs(t, "lonely.json", `{"actors": [{"name": "carol", "steps": [{"type": "sleep", "ms": 1}]},
  {"name": "dave", "steps": [{"type": "sleep", "ms": 1}]}, {"name": "erin", "steps": [{"type": "sleep", "ms": 1}]}]}`, proxy.sip)
	code, out = runOnce(t, lonely, "--nats", nats.URL, "--join-timeout", "1s")
	if code != 1 || !strings.Contains(out, "--scenario-actor") {
		t.Fatalf("three actors, one idle worker for any: exit %d, want 1 naming what to start:\n%s", code, out)
	}
	cmd := exec.Command(siphondBin, "--role", "scenario")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "give --nats") {
		t.Fatalf("--role scenario without --nats: %v, want exit 2:\n%s", err, out)
	}
}
