// Package sipdnstest serves DNS records on a loopback port for tests of RFC
// 3263 resolution: a real DNS server (miekg/dns) answering from a zone the
// test fills.
package sipdnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Zone is a running DNS server's records.
type Zone struct {
	// Addr is the server's host:port (UDP, 127.0.0.1).
	Addr string

	mu  sync.Mutex
	rrs map[string][]dns.RR // "name./TYPE" → records
}

// Server answers the records (zone-file lines, "example.test. 60 IN A
// 127.0.0.2") over UDP on 127.0.0.1 until the test ends.
func Server(t testing.TB, records ...string) *Zone {
	t.Helper()
	z := &Zone{rrs: map[string][]dns.RR{}}
	z.Add(t, records...)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.answer)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

// Add puts more records in the zone.
func (z *Zone) Add(t testing.TB, records ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		key := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		z.rrs[key] = append(z.rrs[key], rr)
	}
}

// answer gives the records asked for; a name with none of any type does not exist.
func (z *Zone) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	z.mu.Lock()
	exists := false
	for _, question := range q.Question {
		name := strings.ToLower(question.Name)
		m.Answer = append(m.Answer, z.rrs[name+"/"+dns.TypeToString[question.Qtype]]...)
		for k := range z.rrs {
			exists = exists || strings.HasPrefix(k, name+"/")
		}
	}
	z.mu.Unlock()
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}
