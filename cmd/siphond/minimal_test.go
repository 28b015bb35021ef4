package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

const checkScenario = "testdata/options-check.xml"

// TestEmbeddedMinimal is the README's run command: one process, embedded NATS,
// OPTIONS over UDP, TCP and TLS.
func TestEmbeddedMinimal(t *testing.T) {
	cert, key := selfSigned(t)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := start(t, true, "--mode", "minimal", "--sips-bind", tlsAddr, "--tls-cert", cert, "--tls-key", key)

	t.Run("SIPpUDP", func(t *testing.T) { sipp(t, checkScenario, "u1", p.sip, 20, 100).mustPass(t, 20) })
	t.Run("SIPpTCP", func(t *testing.T) { sipp(t, checkScenario, "t1", p.sip, 20, 100).mustPass(t, 20) })
	t.Run("SIPpTLS", func(t *testing.T) {
		sipp(t, checkScenario, "t1", tlsTunnel(t, tlsAddr), 20, 100).mustPass(t, 20)
	})
	c := client(t)
	for _, tr := range []struct{ transport, addr string }{{"udp", p.sip}, {"tcp", p.sip}, {"tls", tlsAddr}} {
		t.Run("Headers/"+tr.transport, func(t *testing.T) {
			res := do(t, c, sip.OPTIONS, tr.transport, tr.addr)
			if res.StatusCode != 200 {
				t.Fatalf("got %d", res.StatusCode)
			}
			for name, want := range map[string]string{"Allow": "OPTIONS", "Accept": "application/sdp", "Server": "siphond/0.2-refactored"} {
				if h := res.GetHeader(name); h == nil || h.Value() != want {
					t.Errorf("%s: got %v, want %q", name, h, want)
				}
			}
			for _, h := range res.Headers() {
				if strings.TrimSpace(h.Value()) == "" && h.Name() != "Content-Length" {
					t.Errorf("an empty %s header", h.Name())
				}
			}
		})
	}
	t.Run("RetransmissionsAbsorbed", func(t *testing.T) {
		// RFC 3261 §17.2.2: a retransmitted request gets the same final response
		// again and never reaches the role twice.
		conn, err := net.Dial("udp", p.sip)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		msg := []byte("OPTIONS sip:siphond@" + p.sip + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() +
			";rport;branch=z9hG4bKretrans1\r\nMax-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=r1\r\n" +
			"To: <sip:siphond@127.0.0.1>\r\nCall-ID: retrans-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
		roleBefore := p.counter(t, "siphon_sip_requests_total", `role="uas"`, `method="OPTIONS"`)
		absorbedBefore := p.counter(t, "siphon_edge_dropped_total", `reason="retransmission"`)
		var answers []string
		buf := make([]byte, 65535)
		for range 3 {
			if _, err := conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("answer %d: %v", len(answers)+1, err)
			}
			answers = append(answers, string(buf[:n]))
		}
		if answers[0] != answers[1] || answers[1] != answers[2] || !strings.HasPrefix(answers[0], "SIP/2.0 200 ") {
			t.Fatalf("answers differ or are not 200:\n%s\n---\n%s", answers[0], answers[2])
		}
		if got := p.counter(t, "siphon_sip_requests_total", `role="uas"`, `method="OPTIONS"`) - roleBefore; got != 1 {
			t.Fatalf("the role saw the request %v times, want 1", got)
		}
		if got := p.counter(t, "siphon_edge_dropped_total", `reason="retransmission"`) - absorbedBefore; got != 2 {
			t.Fatalf("%v retransmissions absorbed, want 2", got)
		}
	})
	t.Run("MethodNotAllowed", func(t *testing.T) {
		res := do(t, c, sip.MESSAGE, "udp", p.sip)
		if res.StatusCode != 405 || res.GetHeader("Allow").Value() != "OPTIONS" {
			t.Fatalf("got %d Allow=%v, want 405 with Allow: OPTIONS", res.StatusCode, res.GetHeader("Allow"))
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		if n := p.counter(t, "siphon_sip_responses_total", `role="uas"`, `method="OPTIONS"`, `code="200"`); n < 60 {
			t.Fatalf("uas counted %v OPTIONS 200s, want at least 60", n)
		}
		if n := p.counter(t, "siphon_bus_roundtrip_seconds_count", `role="uas"`, `method="OPTIONS"`); n < 60 {
			t.Fatalf("bus round trips counted %v, want at least 60", n)
		}
		if n := p.counter(t, "siphon_nats_connected"); n != 1 {
			t.Fatalf("siphon_nats_connected = %v, want 1", n)
		}
	})
}

// TestMultiProcess runs the edge and the uas as separate processes over a real
// nats-server: a stopped role is answered 503 at once, a restarted one is
// served again without touching the edge, and two replicas share the load.
func TestMultiProcess(t *testing.T) {
	natsSrv := testutil.NATSServer(t)
	natsURL := natsSrv.URL
	edge := start(t, true, "--mode", "minimal", "--role", "edge", "--nats", natsURL, "--edge-id", "edge-a")
	uas1 := start(t, false, "--mode", "minimal", "--role", "uas", "--nats", natsURL)
	c := client(t)
	if res := do(t, c, sip.OPTIONS, "udp", edge.sip); res.StatusCode != 200 {
		t.Fatalf("OPTIONS through two processes: %d", res.StatusCode)
	}
	sipp(t, checkScenario, "u1", edge.sip, 20, 100).mustPass(t, 20)

	t.Run("StoppedRoleIs503", func(t *testing.T) {
		killed := time.Now()
		uas1.stop(syscall.SIGKILL)
		// The kernel closes the dead process's connection; nats-server drops its
		// subscriptions when it reads that. Only then can it say no-responders.
		natsSrv.WaitNoSubscriber(t, strings.TrimSuffix(wire.SIPRequestRole(wire.RoleUAS), ">"), time.Second)
		// --role-timeout is 5 s: a 503 inside the second came from no-responders.
		res, err := testutil.Send(c, sip.OPTIONS, "udp", edge.sip, time.Second-time.Since(killed))
		if err != nil {
			t.Fatalf("no answer within 1 s of the uas stopping: %v", err)
		}
		if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
			t.Fatalf("got %d, want 503 with Retry-After", res.StatusCode)
		}
	})
	var uasA *proc
	outer := t
	t.Run("RestartedRoleServes", func(t *testing.T) {
		// Started on the outer test so it outlives this step.
		uasA = start(outer, false, "--mode", "minimal", "--role", "uas", "--nats", natsURL)
		if res := do(t, c, sip.OPTIONS, "udp", edge.sip); res.StatusCode != 200 {
			t.Fatalf("after restart: %d", res.StatusCode)
		}
	})
	t.Run("TwoReplicasShare1000", func(t *testing.T) {
		if uasA == nil {
			t.Skip("needs the restarted replica")
		}
		uasB := start(t, false, "--mode", "minimal", "--role", "uas", "--nats", natsURL)
		label := []string{`role="uas"`, `method="OPTIONS"`, `code="200"`}
		aBefore, bBefore := uasA.counter(t, "siphon_sip_responses_total", label...), uasB.counter(t, "siphon_sip_responses_total", label...)
		sipp(t, "../../bench/sipp/options.xml", "u1", edge.sip, 1000, 500).mustPass(t, 1000)
		servedA := uasA.counter(t, "siphon_sip_responses_total", label...) - aBefore
		servedB := uasB.counter(t, "siphon_sip_responses_total", label...) - bBefore
		if servedA == 0 || servedB == 0 || servedA+servedB != 1000 {
			t.Fatalf("replicas answered %v + %v of 1000 OPTIONS: want both some, none lost", servedA, servedB)
		}
		t.Logf("replica A answered %v, replica B %v", servedA, servedB)
	})
}

// TestMalformedInput sends RFC 4475's messages and the PROTOS c07-sip subset to
// a running edge over UDP: each malformed request is answered 400 (or 416/505)
// or dropped and counted in siphon_edge_dropped_total, never silently ignored,
// and the edge goes on answering valid requests.
func TestMalformedInput(t *testing.T) {
	p := start(t, true, "--mode", "minimal")
	data := testutil.SharedTestdata(t)
	invalid := map[string]string{}
	manifest, err := os.ReadFile(filepath.Join(data, "rfc4475", "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(manifest), "\n")[1:] {
		cols := strings.Split(line, "\t")
		if len(cols) > 4 && cols[2] == "invalid" {
			invalid[cols[0]] = cols[4]
		}
	}
	names := make([]string, 0, len(invalid))
	for n := range invalid {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run("rfc4475/"+name, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(data, "rfc4475", name))
			if err != nil {
				t.Fatal(err)
			}
			answer := answerOrDrop(t, p, msg)
			if answer == nil {
				return // dropped, and counted
			}
			status, _, _ := strings.Cut(string(answer), "\r\n")
			if !strings.HasPrefix(status, "SIP/2.0 400 ") && !strings.HasPrefix(status, "SIP/2.0 416 ") && !strings.HasPrefix(status, "SIP/2.0 505 ") {
				t.Fatalf("got %q (expected: %s)", status, invalid[name])
			}
		})
	}
	cases, err := filepath.Glob(filepath.Join(data, "protos", "rendered", "*.sip"))
	if err != nil || len(cases) < 400 {
		t.Fatalf("PROTOS cases: %d, %v", len(cases), err)
	}
	conn, err := net.Dial("udp", p.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range cases {
		msg, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(msg)
	}
	valid, err := os.ReadFile(filepath.Join(data, "protos", "rendered", "0000000.sip"))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh transaction, and rport so the answer comes to this socket rather
	// than to the Via's port 5070 (RFC 3581).
	valid = []byte(strings.Replace(string(valid), "Call-ID: 0@", "Call-ID: alive-check@", 1))
	valid = []byte(strings.Replace(string(valid), ";branch=z9hG4bK000000000000", ";rport;branch=z9hG4bKalivecheck", 1))
	if answer := udpExchange(t, p.sip, valid, 5*time.Second); answer == nil {
		t.Fatal("no answer to the valid PROTOS case after the malformed ones")
	}
	if res := do(t, client(t), sip.OPTIONS, "udp", p.sip); res.StatusCode != 200 {
		t.Fatalf("OPTIONS after malformed input: %d", res.StatusCode)
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("siphond exited")
	}
}

// TestProtosAnsweredAtOnce: every PROTOS c07-sip case gets a final response
// or is dropped (and counted) without waiting on a role: --role-timeout is
// 32 s, past the 10 s a case may take, so one a role could not take fails. Each case's
// Via is aimed at this test's socket, the rest of it sent as rendered.
func TestProtosAnsweredAtOnce(t *testing.T) {
	p := start(t, true, "--mode", "full-uas", "--role-timeout", "32s")
	cases, err := filepath.Glob(filepath.Join(testutil.SharedTestdata(t), "protos", "rendered", "*.sip"))
	if err != nil || len(cases) < 400 {
		t.Fatalf("PROTOS cases: %d, %v", len(cases), err)
	}
	metrics := "http://" + p.metrics + "/metrics"
	raddr, _ := net.ResolveUDPAddr("udp", p.sip)
	var slowest time.Duration
	var slowestCase string
	answered, dropped := 0, 0
	for _, c := range cases {
		msg, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		msg = bytes.Replace(msg, []byte("127.0.0.1:5070"), []byte(conn.LocalAddr().String()), 1)
		before := testutil.MetricSum(t, metrics, "siphon_edge_dropped_total")
		sent := time.Now()
		if _, err := conn.WriteTo(msg, raddr); err != nil {
			t.Fatal(err)
		}
		final := false
		buf := make([]byte, 65535)
		for deadline := sent.Add(10 * time.Second); !final && time.Now().Before(deadline); {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if n, _, err := conn.ReadFrom(buf); err == nil {
				if code, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(buf[:min(n, 12)]), "SIP/2.0 "))); err == nil && code >= 200 {
					if code == 500 {
						t.Fatalf("%s: 500: the edge or a role failed on it:\n%s", filepath.Base(c), buf[:min(n, 600)])
					}
					final = true
					answered++
				}
				continue
			}
			if testutil.MetricSum(t, metrics, "siphon_edge_dropped_total") > before {
				final = true
				dropped++
			}
		}
		conn.Close()
		if !final {
			t.Fatalf("%s: neither a final response nor a drop within 10 s (--role-timeout is 32s)", filepath.Base(c))
		}
		if d := time.Since(sent); d > slowest {
			slowest, slowestCase = d, filepath.Base(c)
		}
	}
	t.Logf("%d PROTOS cases: %d answered, %d dropped; slowest %s in %v", len(cases), answered, dropped, slowestCase, slowest)
}

// TestBadConfiguration: each mistake is one clear line on stderr and exit code 2.
func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	users := filepath.Join(dir, "users.json")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	os.WriteFile(users, []byte("{alice: secret"), 0o600)
	cert, key := selfSigned(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown mode", []string{"--mode", "pbx"}, "unknown mode"},
		{"unknown role", []string{"--role", "router"}, "unknown role"},
		{"bad call duration", []string{"--max-call-duration", "-1s"}, "--max-call-duration"},
		{"missing b2bua credentials", []string{"--b2bua-credentials", filepath.Join(dir, "missing.json")}, "--b2bua-credentials"},
		{"garbled b2bua credentials", []string{"--b2bua-credentials", users}, "--b2bua-credentials"},
		{"bad algorithm", []string{"--auth-algorithms", "SHA-1"}, "--auth-algorithms"},
		{"expiry order", []string{"--reg-min-expiry", "7200"}, "--reg-min-expiry"},
		{"bad address", []string{"--udp-bind", "127.0.0.1"}, "--udp-bind"},
		{"bad host", []string{"--tcp-bind", "example.com:5060"}, "not an IP address"},
		{"unreadable cert", []string{"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", key}, "TLS certificate"},
		{"garbage cert", []string{"--tls-cert", garbage, "--tls-key", key}, "TLS certificate"},
		{"cert without key", []string{"--tls-cert", cert}, "both --tls-cert and --tls-key"},
		{"bad log level", []string{"--log-level", "trace"}, "--log-level"},
		{"bad users file", []string{"--auth-users", users}, "--auth-users"},
		{"bad SDP profile", []string{"--sdp-profile", garbage}, "--sdp-profile"},
		{"missing users file", []string{"--auth-users", filepath.Join(dir, "none.json")}, "--auth-users"},
		{"role without nats", []string{"--role", "uas"}, "give --nats"},
		{"bad nats url", []string{"--nats", "127.0.0.1:4222"}, "--nats"},
		{"unknown flag", []string{"--frobnicate"}, "frobnicate"},
		{"Timer C too short", []string{"--timer-c", "10ms"}, "--timer-c"},
		{"sender check off", []string{"--sender-check", "0s"}, "--sender-check"},
		{"message size past UDP's", []string{"--max-message-size", "70000"}, "--max-message-size"},
		{"unknown rate-limit action", []string{"--rate-limit-action", "reject"}, "--rate-limit-action"},
		{"negative rate limit", []string{"--udp-rate-limit", "-5"}, "--udp-rate-limit"},
		{"unknown fork mode", []string{"--fork-mode", "random"}, "--fork-mode"},
		{"unknown foreign-domain policy", []string{"--foreign-domains", "relay"}, "--foreign-domains"},
		{"dns server without port", []string{"--dns-server", "127.0.0.1"}, "--dns-server"},
		{"advertise every interface", []string{"--advertise", "0.0.0.0:5060"}, "--advertise"},
		{"subscription expiries out of order", []string{"--sub-min-expiry", "600", "--sub-default-expiry", "60"}, "--sub-min-expiry"},
		{"bad env", nil, "SIPHON_REG_MIN_EXPIRY"},
		{"no SIP socket", []string{"--udp-bind", "", "--tcp-bind", ""}, "no SIP socket"},
	}
	// Ports another process holds: SIP over UDP and TCP, and the metrics port.
	udpHeld, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpHeld.Close()
	tcpHeld, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHeld.Close()
	free := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	tests = append(tests, []struct {
		name string
		args []string
		want string
	}{
		{"UDP port in use", []string{"--udp-bind", udpHeld.LocalAddr().String(), "--tcp-bind", free}, "--udp-bind " + udpHeld.LocalAddr().String() + ": the port is in use"},
		{"TCP port in use", []string{"--udp-bind", free, "--tcp-bind", tcpHeld.Addr().String()}, "--tcp-bind " + tcpHeld.Addr().String() + ": the port is in use"},
		{"one port for TCP and WebSocket", []string{"--udp-bind", free, "--tcp-bind", free, "--ws-bind", free}, "--ws-bind " + free + ": the port is in use"},
		{"metrics port in use", []string{"--udp-bind", free, "--tcp-bind", free, "--metrics-bind", tcpHeld.Addr().String()}, "--metrics-bind"},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, siphondBin, tt.args...)
			cmd.Env = append(os.Environ(), "SIPHON_METRICS_BIND=")
			if tt.args == nil {
				cmd.Env = append(cmd.Env, "SIPHON_REG_MIN_EXPIRY=soon")
			}
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("want one line mentioning %q, got:\n%s", tt.want, out)
			}
		})
	}
}

// answerOrDrop sends one datagram to the edge of p and returns its answer, or
// nil once the edge has counted it dropped; neither within 10 s fails the test.
func answerOrDrop(t *testing.T, p *proc, data []byte) []byte {
	t.Helper()
	metrics := "http://" + p.metrics + "/metrics"
	before := testutil.MetricSum(t, metrics, "siphon_edge_dropped_total")
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, _ := net.ResolveUDPAddr("udp", p.sip)
	if _, err := conn.WriteTo(data, raddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := conn.ReadFrom(buf); err == nil {
			return buf[:n]
		}
		if testutil.MetricSum(t, metrics, "siphon_edge_dropped_total") > before {
			return nil
		}
	}
	t.Fatal("neither answered nor counted as dropped within 10 s")
	return nil
}
