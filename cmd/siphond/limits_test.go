package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

// TestMessageSize: a UDP datagram carries up to 65,507 bytes and the edge
// reads it whole; what is larger than --max-message-size is answered 513
// (RFC 3261 §21.5.14) on UDP and on TCP, where the connection stays up and
// takes the next request; a response too large for an MTU still goes back
// over UDP, the transport its request came by (§18.2.2).
func TestMessageSize(t *testing.T) {
	t.Run("a 64 KB MESSAGE over UDP is taken", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		body := strings.Repeat("x", 64000)
		res := newUA(t, p.sip).call().do("MESSAGE", []string{"Content-Type: text/plain"}, body)
		wantCode(t, res, 200)
	})
	t.Run("a 100 KB MESSAGE over TCP is 513 and the connection goes on", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		u := newTCPUA(t, p.sip)
		res := u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, strings.Repeat("x", 100_000))
		wantCode(t, res, 513)
		wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
	})
	t.Run("a malformed request over TCP is 400 and the connection goes on", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas")
		u := newTCPUA(t, p.sip)
		wantCode(t, u.call().do("MESSAGE", []string{"Content-Type: text/plain", "Contact: 1170 <%s%s:noone@sip.no.invalid>"}, "hi"), 400)
		wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
	})
	t.Run("over --max-message-size is 513 on UDP and TCP", func(t *testing.T) {
		p := start(t, true, "--mode", "full-uas", "--max-message-size", "2000")
		body := strings.Repeat("x", 2500)
		wantCode(t, newUA(t, p.sip).call().do("MESSAGE", []string{"Content-Type: text/plain"}, body), 513)
		u := newTCPUA(t, p.sip)
		wantCode(t, u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, body), 513)
		wantCode(t, u.call().do("MESSAGE", []string{"Content-Type: text/plain"}, "small"), 200)
		if n := p.counter(t, "siphon_sip_responses_total", `role="edge"`, `method="MESSAGE"`, `code="513"`); n < 2 {
			t.Fatalf("513s counted %v, want the UDP and the TCP one", n)
		}
	})
	t.Run("a 10 KB response goes back over UDP", func(t *testing.T) {
		p := start(t, true, "--mode", "minimal")
		// One datagram, never retransmitted (a retransmission would be
		// answered from the edge's replay cache, by another path). Its
		// second Via, as a proxy on the way would add, is echoed in the 200.
		big := "OPTIONS sip:service@" + p.sip + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKbig1\r\n" +
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbig2;x=" + strings.Repeat("y", 10_000) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:caller@example.com>;tag=big\r\nTo: <sip:service@example.com>\r\n" +
			"Call-ID: big-response@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		answer := udpExchange(t, p.sip, []byte(big), 10*time.Second)
		if !strings.HasPrefix(string(answer), "SIP/2.0 200 ") || len(answer) < 10_000 {
			t.Fatalf("got %d bytes (%.40q), want the 200 with the big Via echoed", len(answer), answer)
		}
	})
}

// rawOptions is the nth OPTIONS of a sender at local (its Via, with rport),
// over transport UDP or TCP.
func rawOptions(transport, local, target string, n int) []byte {
	id := strings.NewReplacer(".", "-", ":", "-").Replace(local) + "-" + strconv.Itoa(n)
	return []byte("OPTIONS sip:service@" + target + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + transport + " " + local + ";rport;branch=z9hG4bK" + id + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:load@example.com>;tag=" + id + "\r\nTo: <sip:service@example.com>\r\n" +
		"Call-ID: " + id + "@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
}

// statusOf is a response's status code, 0 when it is not one.
func statusOf(msg []byte) int {
	f := strings.Fields(string(msg[:min(len(msg), 16)]))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// TestRateLimits: the edge's per-source limits (Kamailio's pike, siphond's
// --udp-rate-limit and --stream-rate-limit) with short values.
func TestRateLimits(t *testing.T) {
	t.Run("a flooding source is mostly refused, another at 50/s all answered", func(t *testing.T) {
		p := start(t, true, "--mode", "minimal", "--udp-rate-limit", "100")
		target, _ := net.ResolveUDPAddr("udp", p.sip)
		flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer flood.Close()
		const flooded = 4000
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range flooded {
				_, _ = flood.WriteToUDP(rawOptions("UDP", flood.LocalAddr().String(), p.sip, i), target)
			}
		}()
		// The other source: one request every 20 ms, each retransmitted
		// until its answer as a UA's transaction would (RFC 3261 §17.1.2.2).
		other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		buf := make([]byte, 65535)
		for i := range 50 {
			<-tick.C
			req := rawOptions("UDP", other.LocalAddr().String(), p.sip, i)
			code := 0
			for try := 0; code == 0 && try < 20; try++ {
				_, _ = other.WriteToUDP(req, target)
				_ = other.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if n, _, err := other.ReadFromUDP(buf); err == nil {
					code = statusOf(buf[:n])
				}
			}
			if code != 200 {
				t.Fatalf("the 50/s source's request %d: got %d, want 200", i+1, code)
			}
		}
		<-done
		limited := func() float64 {
			return p.counter(t, "siphon_edge_rate_limited_total", `transport="udp"`)
		}
		for deadline := time.Now().Add(30 * time.Second); limited() < flooded/2; {
			if time.Now().After(deadline) {
				t.Fatalf("%v of %d flooded requests refused, want most", limited(), flooded)
			}
			time.Sleep(20 * time.Millisecond) // polling the edge's counter
		}
		t.Logf("flood: %v of %d refused; the 50/s source: 50 of 50 answered", limited(), flooded)
	})
	t.Run("503 with Retry-After when asked, retransmissions not counted", func(t *testing.T) {
		p := start(t, true, "--mode", "minimal", "--udp-rate-limit", "1", "--rate-limit-burst", "5", "--rate-limit-action", "503")
		target, _ := net.ResolveUDPAddr("udp", p.sip)
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		read := func() []byte {
			buf := make([]byte, 65535)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			return buf[:n]
		}
		first := rawOptions("UDP", conn.LocalAddr().String(), p.sip, 0)
		_, _ = conn.WriteToUDP(first, target)
		if code := statusOf(read()); code != 200 {
			t.Fatalf("first request: %d", code)
		}
		// Its retransmissions are answered from the replay cache, free.
		for range 10 {
			_, _ = conn.WriteToUDP(first, target)
			if code := statusOf(read()); code != 200 {
				t.Fatalf("a retransmission got %d, want the cached 200", code)
			}
		}
		codes := map[int]int{}
		for i := 1; i <= 10; i++ {
			_, _ = conn.WriteToUDP(rawOptions("UDP", conn.LocalAddr().String(), p.sip, i), target)
			res := read()
			codes[statusOf(res)]++
			if statusOf(res) == 503 && !strings.Contains(string(res), "\r\nRetry-After: ") {
				t.Fatalf("503 without Retry-After:\n%s", res)
			}
		}
		if codes[200] < 4 || codes[503] < 1 || codes[200]+codes[503] != 10 {
			t.Fatalf("ten new requests after a burst of 5 at 1/s: %v, want 4 or more 200s (the burst) and 503s", codes)
		}
	})
	t.Run("a TCP connection's limit is its own", func(t *testing.T) {
		p := start(t, true, "--mode", "minimal", "--stream-rate-limit", "1", "--rate-limit-burst", "5", "--rate-limit-action", "503")
		busy := newTCPUA(t, p.sip)
		codes := map[int]int{}
		for range 10 {
			codes[busy.call().do("OPTIONS", nil, "").StatusCode]++
		}
		if codes[200] < 5 || codes[503] < 1 {
			t.Fatalf("ten requests on one connection at 1/s, burst 5: %v, want 5 200s and 503s", codes)
		}
		wantCode(t, newTCPUA(t, p.sip).call().do("OPTIONS", nil, ""), 200)
		if n := p.counter(t, "siphon_edge_rate_limited_total", `transport="tcp"`); n < 1 {
			t.Fatalf("rate-limited TCP requests counted %v", n)
		}
	})
}

// dialFrom opens a TCP connection to target from the loopback address ip.
func dialFrom(t *testing.T, ip, target string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedByEdge says the edge closed conn: a read ends (EOF or reset) within
// wait rather than timing out.
func closedByEdge(conn net.Conn, wait time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			_ = conn.SetReadDeadline(time.Time{}) // open still: usable after
			return !ok || !ne.Timeout()
		}
	}
}

// TestConnectionLimits: --max-connections-per-source and --max-connections
// close one connection too many at once; a closed one frees its place.
func TestConnectionLimits(t *testing.T) {
	p := start(t, true, "--mode", "minimal", "--max-connections-per-source", "2", "--max-connections", "3")
	works := func(conn net.Conn) {
		t.Helper()
		wantCode(t, newStreamUA(t, "TCP", p.sip, conn).call().do("OPTIONS", nil, ""), 200)
	}
	first := dialFrom(t, "127.0.0.1", p.sip)
	works(first)
	works(dialFrom(t, "127.0.0.1", p.sip))
	if !closedByEdge(dialFrom(t, "127.0.0.1", p.sip), 10*time.Second) {
		t.Fatal("a third connection from 127.0.0.1 stayed open (--max-connections-per-source 2)")
	}
	works(dialFrom(t, "127.0.0.2", p.sip))
	if !closedByEdge(dialFrom(t, "127.0.0.3", p.sip), 10*time.Second) {
		t.Fatal("a fourth connection in all stayed open (--max-connections 3)")
	}
	if n := p.counter(t, "siphon_edge_dropped_total", `reason="too-many-connections"`); n != 2 {
		t.Fatalf("refused connections counted %v, want 2", n)
	}
	// Once the edge has seen the first one close, its place is free again.
	first.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn := dialFrom(t, "127.0.0.3", p.sip)
		if !closedByEdge(conn, 200*time.Millisecond) {
			works(conn)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection's place never came free")
		}
	}
}

// TestStreamTimeouts: an idle connection is closed after --idle-timeout,
// one kept alive by RFC 5626 CRLF keep-alives stays, and a message whose
// headers dribble in is cut off at --header-timeout however busy the
// sender keeps the connection.
func TestStreamTimeouts(t *testing.T) {
	p := start(t, true, "--mode", "minimal", "--idle-timeout", "2s", "--header-timeout", "1s")
	t.Run("idle", func(t *testing.T) {
		if !closedByEdge(dialFrom(t, "127.0.0.1", p.sip), 20*time.Second) {
			t.Fatal("an idle connection stayed open past --idle-timeout 2s")
		}
		if n := p.counter(t, "siphon_edge_dropped_total", `reason="idle-timeout"`); n < 1 {
			t.Fatalf("idle-timeout closes counted %v", n)
		}
	})
	t.Run("kept alive", func(t *testing.T) {
		conn := dialFrom(t, "127.0.0.1", p.sip)
		u := newStreamUA(t, "TCP", p.sip, conn)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			<-tick.C
			if _, err := conn.Write([]byte("\r\n\r\n")); err != nil {
				t.Fatalf("keep-alive: %v", err)
			}
		}
		wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
	})
	t.Run("slow headers", func(t *testing.T) {
		conn := dialFrom(t, "127.0.0.1", p.sip)
		req := string(rawOptions("TCP", conn.LocalAddr().String(), p.sip, 1))
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			// One byte every 50 ms: never idle, the headers never whole in time.
			for i := 0; i < len(req); i++ {
				if _, err := conn.Write([]byte{req[i]}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond) // the slowloris' pace, not a wait for the edge
			}
		}()
		if !closedByEdge(conn, 20*time.Second) {
			t.Fatal("a connection whose headers dribbled in stayed open past --header-timeout 1s")
		}
		conn.Close()
		<-closed
		if n := p.counter(t, "siphon_edge_dropped_total", `reason="header-timeout"`); n < 1 {
			t.Fatalf("header-timeout closes counted %v", n)
		}
	})
}

// TestMaxTransactions: with two INVITEs ringing and --max-transactions 2, a
// third request gets 503 with Retry-After.
func TestMaxTransactions(t *testing.T) {
	p := start(t, true, "--mode", "call-server", "--answer-delay", "30s", "--max-transactions", "2")
	for range 2 {
		u := newUA(t, p.sip)
		raw, cseq := u.call().req("INVITE", nil, offer)
		u.send(raw)
		u.response("INVITE", cseq, 180)
	}
	res := newUA(t, p.sip).call().do("OPTIONS", nil, "")
	wantCode(t, res, 503)
	if res.GetHeader("Retry-After") == nil {
		t.Fatalf("503 without Retry-After:\n%s", res)
	}
}

// TestUserRateLimit: --user-rate-limit counts one user's REGISTERs from one
// source in the shared store, whichever edge they come through: alice
// alternating between two edges is held to her budget (503 with Retry-After
// past it), while bob from the same host, and alice from another, still
// register.
func TestUserRateLimit(t *testing.T) {
	url, redis := testutil.NATSServer(t).URL, testutil.Redis(t)
	shared := []string{"--mode", "registrar", "--nats", url, "--redis", redis, "--user-rate-limit", "3"}
	start(t, false, append(shared, "--role", "registrar")...)
	edges := []*proc{
		start(t, true, append(shared, "--role", "edge", "--edge-id", "edge-a")...),
		start(t, true, append(shared, "--role", "edge", "--edge-id", "edge-b")...),
	}
	codes := map[int]int{}
	for i := range 10 {
		u := newUAC(t, "udp", edges[i%2].sip)
		res := u.register("alice", "alice-"+strconv.Itoa(i), 1, "Contact: <sip:alice@192.0.2.1>")
		codes[res.StatusCode]++
		if res.StatusCode == 503 && res.GetHeader("Retry-After") == nil {
			t.Fatalf("503 without Retry-After:\n%s", res)
		}
	}
	if codes[200] < 3 || codes[503] < 1 || codes[200]+codes[503] != 10 {
		t.Fatalf("ten REGISTERs of alice through two edges at --user-rate-limit 3: %v, want 3 or more 200s and 503s", codes)
	}
	bob := newUAC(t, "udp", edges[0].sip)
	if res := bob.register("bob", "bob-1", 1, "Contact: <sip:bob@192.0.2.1>"); res.StatusCode != 200 {
		t.Fatalf("bob after alice's flood: %d", res.StatusCode)
	}
	// The From is a claim: alice from elsewhere has her own budget, so
	// nobody can spend hers (the count is per source and user).
	conn, err := (&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("udp", edges[1].sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	elsewhere := &regUA{t: t, conn: conn, network: "udp", target: edges[1].sip}
	if res := elsewhere.register("alice", "alice-elsewhere", 1, "Contact: <sip:alice@192.0.2.2>"); res.StatusCode != 200 {
		t.Fatalf("alice from 127.0.0.2 after a flood in her name from 127.0.0.1: %d", res.StatusCode)
	}
	limited := edges[0].counter(t, "siphon_edge_user_limited_total", `method="REGISTER"`) +
		edges[1].counter(t, "siphon_edge_user_limited_total", `method="REGISTER"`)
	if int(limited) != codes[503] {
		t.Fatalf("user-limited counted %v, want the %d 503s", limited, codes[503])
	}
}
