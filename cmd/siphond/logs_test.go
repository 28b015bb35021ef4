package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

// duplicateKey is the first key a JSON object line repeats, "" when none;
// ok is false when the line is not one JSON object.
func duplicateKey(line string) (key string, ok bool) {
	d := json.NewDecoder(strings.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return "", false
		}
		k, _ := tok.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return "", false
		}
	}
	return "", true
}

// TestLogLines: with --log-format json every line siphond writes, sipgo's
// and the standard logger's included, is one JSON object with each key
// once (a role's logger and a message naming the role it talks to once both
// said "role").
func TestLogLines(t *testing.T) {
	p := start(t, true, "--mode", "full-uas", "--log-format", "json", "--role-timeout", "1s")
	u := newUA(t, p.sip)
	wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
	d := u.call()
	res := d.established(nil, offer)
	wantCode(t, d.do("BYE", nil, ""), 200)
	_ = res
	tcp := newTCPUA(t, p.sip)
	wantCode(t, tcp.call().do("MESSAGE", []string{"Content-Type: text/plain"}, "hi"), 200)
	// A request the uas cannot parse: a warning from the role and the edge.
	_ = udpExchange(t, p.sip, []byte("MESSAGE sip:service@"+p.sip+" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKlog1\r\n"+
		"From: <sip:a@example.com>;tag=1\r\nTo: <sip:service@example.com>\r\nCall-ID: log1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n"), 5*time.Second)
	p.stop(15) // SIGTERM: the stopping lines too
	w := p.cmd.Stdout.(*syncWriter)
	w.mu <- struct{}{}
	out := p.log.String()
	<-w.mu
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		n++
		key, ok := duplicateKey(line)
		if !ok {
			t.Fatalf("a log line that is not one JSON object: %q", line)
		}
		if key != "" {
			t.Fatalf("key %q twice in %q", key, line)
		}
	}
	if n < 5 {
		t.Fatalf("only %d log lines:\n%s", n, out)
	}
}

// TestNATSUnreachable: a role whose NATS is not up waits for it and says
// why, rather than failing on what micro makes of a connection not yet made
// ("headers not supported by this server").
func TestNATSUnreachable(t *testing.T) {
	port := testutil.FreePort(t)
	cmd := exec.Command(siphondBin, "--role", "uas", "--nats", "nats://127.0.0.1:"+strconv.Itoa(port), "--metrics-bind", "")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "headers not supported") {
			t.Fatalf("misleading error: %s", line)
		}
		if strings.Contains(line, "waiting for NATS") {
			if !strings.Contains(line, "connection refused") {
				t.Fatalf("the wait does not say why: %s", line)
			}
			return
		}
	}
	t.Fatalf("siphond ended without saying it waits for NATS (%v)", sc.Err())
}
