package main

import (
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestIDSeed: with SIPHON_ID_SEED, the same input gets the same To tag from a
// fresh siphond; another seed gives another tag.
func TestIDSeed(t *testing.T) {
	const options = "OPTIONS sip:siphond@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKseedtest\r\nMax-Forwards: 70\r\n" +
		"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:siphond@127.0.0.1>\r\nCall-ID: seed-test\r\n" +
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	toTag := regexp.MustCompile(`(?m)^To: .*;tag=([0-9a-f]+)`)
	tagWith := func(seed string) string {
		p := startEnv(t, []string{"SIPHON_ID_SEED=" + seed}, "--mode", "minimal")
		defer p.stop(syscall.SIGKILL)
		answer := udpExchange(t, p.sip, []byte(options), 5*time.Second)
		m := toTag.FindSubmatch(answer)
		if m == nil {
			t.Fatalf("no To tag in:\n%s", answer)
		}
		return string(m[1])
	}
	a, b, c := tagWith("42"), tagWith("42"), tagWith("43")
	if a != b {
		t.Fatalf("seed 42 gave tags %s and %s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 42 and 43 gave the same tag %s", a)
	}
}
