package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// regUA sends hand-made REGISTERs from one socket, so every header is under the
// test's control, and reads the answers.
type regUA struct {
	t       *testing.T
	conn    net.Conn
	network string
	target  string
	seq     int
	mu      sync.Mutex
}

func newUAC(t *testing.T, network, target string) *regUA {
	t.Helper()
	conn, err := net.Dial(network, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &regUA{t: t, conn: conn, network: network, target: target}
}

// register sends a REGISTER for user with callID/cseq and extra header lines,
// and returns the final response.
func (u *regUA) register(user, callID string, cseq int, extra ...string) *sip.Response {
	u.t.Helper()
	u.mu.Lock()
	u.seq++
	branch := fmt.Sprintf("z9hG4bKreg%d%d", time.Now().UnixNano(), u.seq)
	u.mu.Unlock()
	local := u.conn.LocalAddr().String()
	transport := strings.ToUpper(u.network)
	msg := "REGISTER sip:" + u.target + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + transport + " " + local + ";rport;branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + user + "@example.com>;tag=t" + callID + "\r\n" +
		"To: <sip:" + user + "@example.com>\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: " + strconv.Itoa(cseq) + " REGISTER\r\n"
	for _, h := range extra {
		msg += h + "\r\n"
	}
	msg += "Content-Length: 0\r\n\r\n"
	if _, err := u.conn.Write([]byte(msg)); err != nil {
		u.t.Fatal(err)
	}
	buf := make([]byte, 65535)
	var pending []byte
	for {
		_ = u.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("no answer to REGISTER (%s): %v", strings.Join(extra, " | "), err)
		}
		pending = append(pending, buf[:n]...)
		if u.network == "tcp" && !strings.Contains(string(pending), "\r\n\r\n") {
			continue
		}
		m, err := sip.ParseMessage(pending)
		if err != nil {
			u.t.Fatalf("unparseable answer: %v\n%s", err, pending)
		}
		pending = nil
		res := m.(*sip.Response)
		if res.StatusCode >= 200 {
			return res
		}
	}
}

func expect(t *testing.T, res *sip.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("got %d %s, want %d:\n%s", res.StatusCode, res.Reason, code, res)
	}
}

// contactsOf returns the Contact URIs of a 200 and each one's expires.
func contactsOf(t *testing.T, res *sip.Response) ([]string, []int) {
	t.Helper()
	var uris []string
	var exp []int
	for _, h := range res.GetHeaders("Contact") {
		c := h.(*sip.ContactHeader)
		uris = append(uris, c.Address.String())
		v, _ := c.Params.Get("expires")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("Contact without expires: %s", c)
		}
		exp = append(exp, n)
	}
	return uris, exp
}

// events collects registrar events from the bus.
type events struct {
	mu  sync.Mutex
	got []map[string]any
	ch  chan struct{}
}

func watchEvents(t *testing.T, url string) *events {
	t.Helper()
	ev := &events{ch: make(chan struct{}, 1000)}
	nc := testutil.Conn(t, url)
	_, err := nc.Subscribe(wire.EventSource(wire.RoleRegistrar), func(m *nats.Msg) {
		var e map[string]any
		if json.Unmarshal(m.Data, &e) == nil {
			ev.mu.Lock()
			ev.got = append(ev.got, e)
			ev.mu.Unlock()
			ev.ch <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return ev
}

// waitFor returns the first event named name for contact, waiting up to within.
func (ev *events) waitFor(t *testing.T, name, contact string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		ev.mu.Lock()
		for _, e := range ev.got {
			b, _ := e["binding"].(map[string]any)
			if e["event"] == name && b["contact"] == contact {
				ev.mu.Unlock()
				return b
			}
		}
		ev.mu.Unlock()
		select {
		case <-ev.ch:
		case <-deadline:
			t.Fatalf("no %s event for %s within %v", name, contact, within)
		}
	}
}

// TestRegistrar drives a running registrar over SIP and checks the responses,
// the stored bindings (through queries) and the events on the bus.
func TestRegistrar(t *testing.T) {
	natsURL := testutil.NATSServer(t).URL
	p := start(t, true, "--mode", "registrar", "--nats", natsURL, "--edge-id", "edge-reg",
		"--reg-min-expiry", "2", "--reg-default-expiry", "600", "--reg-max-expiry", "3600")
	ev := watchEvents(t, natsURL)
	u := newUAC(t, "udp", p.sip)

	t.Run("AddOrderedByQAndQuery", func(t *testing.T) {
		res := u.register("alice", "add-1", 1, "Contact: <sip:alice@192.0.2.1>;q=0.5, <sip:alice@192.0.2.2>;q=0.9", "Expires: 120")
		expect(t, res, 200)
		uris, exp := contactsOf(t, res)
		if strings.Join(uris, " ") != "sip:alice@192.0.2.2 sip:alice@192.0.2.1" {
			t.Fatalf("contacts %v, want q=0.9 before q=0.5", uris)
		}
		for _, e := range exp {
			if e < 115 || e > 120 {
				t.Fatalf("expires %v, want about 120", exp)
			}
		}
		if d := res.GetHeader("Date"); d == nil {
			t.Fatal("200 to REGISTER has no Date (RFC 3261 §10.3 step 8)")
		} else if _, err := http.ParseTime(d.Value()); err != nil {
			t.Fatalf("Date %q: %v", d.Value(), err)
		}
		query := u.register("alice", "query-1", 1)
		expect(t, query, 200)
		if got, _ := contactsOf(t, query); strings.Join(got, " ") != strings.Join(uris, " ") {
			t.Fatalf("query returned %v, want %v", got, uris)
		}
		ev.waitFor(t, wire.EventBindingAdded, "sip:alice@192.0.2.2", 5*time.Second)
	})

	t.Run("ExpiryClampedAndTooBrief", func(t *testing.T) {
		res := u.register("clamp", "clamp-1", 1, "Contact: <sip:clamp@192.0.2.3>;expires=99999")
		expect(t, res, 200)
		if _, exp := contactsOf(t, res); len(exp) != 1 || exp[0] != 3600 {
			t.Fatalf("expires %v, want lowered to --reg-max-expiry 3600", exp)
		}
		res = u.register("clamp", "clamp-1", 2, "Contact: <sip:clamp@192.0.2.4>", "Expires: 1")
		expect(t, res, 423)
		if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "2" {
			t.Fatalf("423 Min-Expires: %v, want 2", h)
		}
		if got, _ := contactsOf(t, u.register("clamp", "clamp-q", 1)); len(got) != 1 {
			t.Fatalf("a 423 changed the bindings: %v", got)
		}
		res = u.register("clamp", "clamp-1", 3, "Contact: <sip:clamp@192.0.2.5>")
		if _, exp := contactsOf(t, res); len(exp) != 2 || (exp[0] != 600 && exp[1] != 600) {
			t.Fatalf("default expiry: %v, want one at --reg-default-expiry 600", exp)
		}
	})

	t.Run("RemoveOneContact", func(t *testing.T) {
		u.register("rm", "rm-1", 1, "Contact: <sip:rm@192.0.2.1>, <sip:rm@192.0.2.2>", "Expires: 300")
		res := u.register("rm", "rm-1", 2, "Contact: <sip:rm@192.0.2.1>;expires=0")
		expect(t, res, 200)
		if got, _ := contactsOf(t, res); strings.Join(got, " ") != "sip:rm@192.0.2.2" {
			t.Fatalf("after expires=0: %v", got)
		}
		ev.waitFor(t, wire.EventBindingRemoved, "sip:rm@192.0.2.1", 5*time.Second)
	})

	t.Run("Wildcard", func(t *testing.T) {
		u.register("wild", "wild-1", 1, "Contact: <sip:wild@192.0.2.1>, <sip:wild@192.0.2.2>", "Expires: 300")
		for _, bad := range [][]string{
			{"Contact: *", "Expires: 60"},
			{"Contact: *"},
			{"Contact: *, <sip:wild@192.0.2.3>", "Expires: 0"},
		} {
			expect(t, u.register("wild", "wild-1", 2, bad...), 400)
		}
		res := u.register("wild", "wild-1", 3, "Contact: *", "Expires: 0")
		expect(t, res, 200)
		if got, _ := contactsOf(t, res); len(got) != 0 {
			t.Fatalf("after Contact: *: %v", got)
		}
		if got, _ := contactsOf(t, u.register("wild", "wild-q", 1)); len(got) != 0 {
			t.Fatalf("query after wildcard: %v", got)
		}
	})

	t.Run("CSeqOrdering", func(t *testing.T) {
		expect(t, u.register("seq", "seq-1", 10, "Contact: <sip:seq@192.0.2.1>", "Expires: 300"), 200)
		for _, cseq := range []int{10, 9} {
			res := u.register("seq", "seq-1", cseq, "Contact: <sip:seq@192.0.2.1>;expires=0")
			if res.StatusCode < 400 {
				t.Fatalf("same Call-ID, CSeq %d after 10: got %d", cseq, res.StatusCode)
			}
		}
		if got, _ := contactsOf(t, u.register("seq", "seq-q", 1)); strings.Join(got, " ") != "sip:seq@192.0.2.1" {
			t.Fatalf("an out-of-order REGISTER changed the binding: %v", got)
		}
		// Another Call-ID is another registration: its CSeq is not compared.
		expect(t, u.register("seq", "seq-2", 1, "Contact: <sip:seq@192.0.2.1>;expires=0"), 200)
	})

	t.Run("Path", func(t *testing.T) {
		res := u.register("path", "path-1", 1, "Contact: <sip:path@192.0.2.1>", "Expires: 300",
			"Path: <sip:edge1.example.net;lr>", "Supported: path")
		expect(t, res, 200)
		if h := res.GetHeader("Path"); h == nil || h.Value() != "<sip:edge1.example.net;lr>" {
			t.Fatalf("Path not echoed with Supported: path: %v", h)
		}
		b := ev.waitFor(t, wire.EventBindingAdded, "sip:path@192.0.2.1", 5*time.Second)
		if path, _ := b["path"].([]any); len(path) != 1 || path[0] != "<sip:edge1.example.net;lr>" {
			t.Fatalf("stored Path: %v", b["path"])
		}
		res = u.register("path", "path-2", 1, "Contact: <sip:path@192.0.2.2>", "Expires: 300", "Path: <sip:edge1.example.net;lr>")
		if h := res.GetHeader("Path"); h != nil {
			t.Fatal("Path echoed to a UA that did not say Supported: path")
		}
	})

	t.Run("OutboundInstanceAndFlowOverTCP", func(t *testing.T) {
		tcp := newUAC(t, "tcp", p.sip)
		res := tcp.register("ob", "ob-1", 1, `Contact: <sip:ob@192.0.2.9;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1`,
			"Expires: 300", "Supported: outbound, path")
		expect(t, res, 200)
		if h := res.GetHeader("Require"); h == nil || h.Value() != "outbound" {
			t.Fatalf("Require: %v, want outbound (RFC 5626 §6)", h)
		}
		c := res.GetHeader("Contact").Value()
		if !strings.Contains(c, "+sip.instance=") || !strings.Contains(c, "reg-id=1") {
			t.Fatalf("Contact lost instance or reg-id: %s", c)
		}
		b := ev.waitFor(t, wire.EventBindingAdded, "sip:ob@192.0.2.9;transport=tcp", 5*time.Second)
		wantFlow := "tcp:" + tcp.conn.LocalAddr().String()
		if b["flow"] != wantFlow || b["edge"] != "edge-reg" || b["transport"] != "tcp" || b["reg_id"] != float64(1) {
			t.Fatalf("binding flow %v edge %v transport %v reg_id %v, want %s edge-reg tcp 1", b["flow"], b["edge"], b["transport"], b["reg_id"], wantFlow)
		}
	})

	t.Run("UnknownRequire", func(t *testing.T) {
		res := u.register("req", "req-1", 1, "Contact: <sip:req@192.0.2.1>", "Require: path, foo")
		expect(t, res, 420)
		if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "foo" {
			t.Fatalf("Unsupported: %v, want foo", h)
		}
	})

	t.Run("ExpiresInRealTime", func(t *testing.T) {
		expect(t, u.register("short", "short-1", 1, "Contact: <sip:short@192.0.2.1>", "Expires: 2"), 200)
		ev.waitFor(t, wire.EventBindingExpired, "sip:short@192.0.2.1", 10*time.Second)
		if got, _ := contactsOf(t, u.register("short", "short-q", 1)); len(got) != 0 {
			t.Fatalf("expired binding still returned: %v", got)
		}
	})

	t.Run("ToMustBeSIP", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(testutil.SharedTestdata(t), "rfc4475", "unksm2.dat"))
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(strings.Replace(string(data), ";branch=", ";rport;branch=", 1))
		answer := udpExchange(t, p.sip, data, 5*time.Second)
		if !strings.HasPrefix(string(answer), "SIP/2.0 400 ") {
			t.Fatalf("REGISTER with an isbn: To: %q, want 400", firstLineOf(answer))
		}
	})
}

func firstLineOf(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

func TestRegistrarRefusesWhenNotAccepting(t *testing.T) {
	p := start(t, true, "--mode", "registrar", "--auto-accept-registrations=false")
	expect(t, newUAC(t, "udp", p.sip).register("x", "no-1", 1, "Contact: <sip:x@192.0.2.1>"), 403)
}
