package main

// The protocol tests drive the real siphond binary over real sockets, with SIPp
// (Debian's sip-tester) and sipgo clients, against a real nats-server where the
// set-up has several processes. This file holds the harness they share.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

var siphondBin string

// buildFlags are the go build flags of the siphond under test.
var buildFlags []string

func TestMain(m *testing.M) {
	if spec := os.Getenv(askerEnv); spec != "" {
		os.Exit(runAsker(spec)) // this binary plays a role replica for TestAskerGone
	}
	dir, err := os.MkdirTemp("", "siphond-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	siphondBin = filepath.Join(dir, "siphond")
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", siphondBin, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build siphond:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running siphond.
type proc struct {
	cmd     *exec.Cmd
	sip     string // host:port of UDP and TCP, when the process has an edge
	metrics string // host:port of /metrics
	log     *bytes.Buffer
}

// lockedBuffer lets the test read a process's log while it writes.
type syncWriter struct {
	w  io.Writer
	mu chan struct{}
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.w.Write(p)
}

// start runs siphond with args plus a free metrics port (and SIP ports when
// edge is true), and waits until /readyz says ready.
func start(t *testing.T, edge bool, args ...string) *proc {
	t.Helper()
	return startWith(t, nil, edge, args...)
}

// startEnv starts a siphond with an edge and extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startWith(t, env, true, args...)
}

func startWith(t *testing.T, env []string, edge bool, args ...string) *proc {
	t.Helper()
	p := &proc{metrics: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), log: &bytes.Buffer{}}
	args = append([]string{"--metrics-bind", p.metrics, "--log-level", "debug"}, args...)
	if edge {
		p.sip = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		// Every test's traffic comes from 127.0.0.1: no per-source limit
		// unless the test gives one (a later flag wins).
		args = append([]string{"--udp-bind", p.sip, "--tcp-bind", p.sip, "--udp-rate-limit", "0", "--stream-rate-limit", "0"}, args...)
	}
	p.cmd = exec.Command(siphondBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	w := &syncWriter{w: p.log, mu: make(chan struct{}, 1)}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		w.mu <- struct{}{}
		raced := strings.Contains(p.log.String(), "WARNING: DATA RACE")
		<-w.mu
		if raced { // a siphond built with GOFLAGS=-race found one
			t.Errorf("siphond %v reported a data race", args)
		}
		if t.Failed() {
			w.mu <- struct{}{}
			t.Logf("siphond %v log:\n%s", args, testutil.Tail(p.log.String(), 6000))
			<-w.mu
		}
	})
	p.waitReady(t)
	return p
}

func (p *proc) stop(sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + p.metrics + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("siphond not ready in 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads one sample of a series from /metrics; 0 when absent.
func (p *proc) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, _ := testutil.Metric(t, "http://"+p.metrics+"/metrics", name, labels...)
	return v
}

// sippResult is what a SIPp run reported.
type sippResult struct {
	rc         int
	successful int
	failed     int
	output     string
}

var sippCounts = regexp.MustCompile(`(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)`)

// sipp runs SIPp as a client with scenario against target, bounded in time.
func sipp(t *testing.T, scenario, transport, target string, calls, rate int, extra ...string) sippResult {
	t.Helper()
	return sippIn(t, t.TempDir(), scenario, transport, target, calls, rate, extra...)
}

// sippIn is sipp run in dir, where SIPp writes its logs (-trace_msg).
func sippIn(t *testing.T, dir, scenario, transport, target string, calls, rate int, extra ...string) sippResult {
	t.Helper()
	bin := testutil.Binary(t, "sipp", "sip-tester")
	scenario, err := filepath.Abs(scenario)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"-sf", scenario, "-t", transport, "-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate),
		"-i", "127.0.0.1", "-p", strconv.Itoa(testutil.FreePort(t)), "-s", "siphond",
		"-nostdin", "-timeout", "60s", "-timeout_error", "-max_socket", "100",
	}, extra...)
	args = append(args, target)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	r := sippResult{rc: cmd.ProcessState.ExitCode(), output: string(out)}
	for _, m := range sippCounts.FindAllStringSubmatch(r.output, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			r.successful = n
		} else {
			r.failed = n
		}
	}
	return r
}

func (r sippResult) mustPass(t *testing.T, calls int) {
	t.Helper()
	if r.rc != 0 || r.successful != calls || r.failed != 0 {
		t.Fatalf("SIPp rc=%d successful=%d failed=%d, want %d successful:\n%s", r.rc, r.successful, r.failed, calls, testutil.Tail(r.output, 3000))
	}
}

// client is a sipgo client on its own ports.
func client(t *testing.T) *sipgo.Client { return testutil.SIPClient(t) }

// do sends method to target over transport and returns the final response.
func do(t *testing.T, c *sipgo.Client, method sip.RequestMethod, transport, target string) *sip.Response {
	t.Helper()
	res, err := testutil.Send(c, method, transport, target, 5*time.Second)
	if err != nil {
		t.Fatalf("%s over %s to %s: %v", method, transport, target, err)
	}
	return res
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths.
func selfSigned(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	return testutil.SelfSigned(t, t.TempDir())
}

// tlsTunnel accepts plain TCP on a loopback port and carries each connection
// over TLS to target. Debian's SIPp is built without TLS; through the tunnel its
// messages reach siphond over a real TLS connection.
func tlsTunnel(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := tls.Dial("tcp", target, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				io.Copy(c, s)
			}()
		}
	}()
	return ln.Addr().String()
}

// udpExchange sends one datagram to target and returns the first answer, or nil
// when none came within wait (the edge may drop what it cannot answer).
func udpExchange(t *testing.T, target string, data []byte, wait time.Duration) []byte {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, _ := net.ResolveUDPAddr("udp", target)
	if _, err := conn.WriteTo(data, raddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}
