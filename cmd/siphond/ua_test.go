package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
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

// ua is a scripted SIP user agent on a UDP socket or a TCP connection, for the
// call tests that need to play both sides (answer the uas's re-INVITEs,
// NOTIFYs and BYEs) and to see every header. Messages are written by hand so a
// test shows exactly what goes on the wire; sipgo's parser reads what comes back.
type ua struct {
	t         *testing.T
	transport string // UDP or TCP
	addr      string // this UA's host:port
	server    string
	write     func([]byte) error
	in        chan sip.Message
	backlog   []sip.Message

	// Over UDP the UA retransmits each request it sends until a response to it
	// comes (RFC 3261 §17.1.1.2, §17.1.2.2), and absorbs retransmitted final
	// responses of non-INVITE transactions, as a UA's transaction layer does.
	mu      sync.Mutex
	pending map[string]chan struct{} // txKey → stops the retransmission
	finals  map[string]bool          // txKey + code of non-INVITE finals seen
}

func newUA(t *testing.T, server string) *ua {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	u := &ua{t: t, transport: "UDP", addr: conn.LocalAddr().String(), server: server, in: make(chan sip.Message, 64),
		pending: map[string]chan struct{}{}, finals: map[string]bool{}}
	u.write = func(b []byte) error { _, err := conn.WriteToUDP(b, srv); return err }
	t.Cleanup(func() { conn.Close(); u.stopRetransmissions() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				close(u.in)
				return
			}
			if msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...)); err == nil && u.transaction(msg) {
				msg.SetSource(from.String()) // where it came from: a NATed UA only takes its server's
				u.in <- msg
			}
		}
	}()
	return u
}

// newTCPUA is a UA on one TCP connection to server: everything the uas sends
// it must come back over that connection (the edge's flow).
func newTCPUA(t *testing.T, server string) *ua {
	t.Helper()
	conn, err := net.Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	return newStreamUA(t, "TCP", server, conn)
}

// newTLSUA is newTCPUA over TLS (the edge's --sips-bind, any certificate).
func newTLSUA(t *testing.T, server string) *ua {
	t.Helper()
	conn, err := tls.Dial("tcp", server, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return newStreamUA(t, "TLS", server, conn)
}

func newStreamUA(t *testing.T, transport, server string, conn net.Conn) *ua {
	u := &ua{t: t, transport: transport, addr: conn.LocalAddr().String(), server: server, in: make(chan sip.Message, 64)}
	u.write = func(b []byte) error { _, err := conn.Write(b); return err }
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(u.in)
		r := bufio.NewReader(conn)
		for {
			raw, err := readStreamMessage(r)
			if err != nil {
				return
			}
			if msg, err := sip.ParseMessage(raw); err == nil {
				u.in <- msg
			}
		}
	}()
	return u
}

// readStreamMessage reads one message off a stream: headers up to the empty
// line, then Content-Length bytes (RFC 3261 §18.3).
func readStreamMessage(r *bufio.Reader) ([]byte, error) {
	var msg []byte
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if len(msg) == 0 && strings.TrimSpace(line) == "" {
			continue // keep-alive CRLFs between messages
		}
		msg = append(msg, line...)
		if strings.TrimSpace(line) == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if n := strings.ToLower(strings.TrimSpace(name)); n == "content-length" || n == "l" {
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(msg, body...), nil
}

func (u *ua) send(raw string) {
	u.t.Helper()
	if err := u.write([]byte(raw)); err != nil {
		u.t.Fatal(err)
	}
	if u.transport != "UDP" {
		return
	}
	msg, err := sip.ParseMessage([]byte(raw))
	req, ok := msg.(*sip.Request)
	if err != nil || !ok || req.IsAck() {
		return
	}
	key := txKey(req)
	stop := make(chan struct{})
	u.mu.Lock()
	if old := u.pending[key]; old != nil {
		close(old)
	}
	u.pending[key] = stop
	u.mu.Unlock()
	go func() {
		interval := sip.T1
		giveUp := time.After(64 * sip.T1)
		for {
			select {
			case <-stop:
				return
			case <-giveUp:
				return
			case <-time.After(interval):
				_ = u.write([]byte(raw))
				if interval *= 2; !req.IsInvite() {
					interval = min(interval, sip.T2)
				}
			}
		}
	}()
}

// transaction is the UA's transaction layer for what arrives: a response stops
// its request's retransmission; a retransmitted non-INVITE final is absorbed.
// It reports whether msg goes on to the test.
func (u *ua) transaction(msg sip.Message) bool {
	res, ok := msg.(*sip.Response)
	if !ok || res.CSeq() == nil {
		return true
	}
	key := txKey(res)
	u.mu.Lock()
	defer u.mu.Unlock()
	if stop := u.pending[key]; stop != nil {
		close(stop)
		delete(u.pending, key)
	}
	if res.StatusCode < 200 || res.CSeq().MethodName == sip.INVITE {
		return true
	}
	final := key + " " + strconv.Itoa(res.StatusCode)
	if u.finals[final] {
		return false
	}
	u.finals[final] = true
	return true
}

// txKey names a transaction of this UA: Call-ID, method and CSeq (calls of
// one UA may share CSeq numbers).
func txKey(m sip.Message) string {
	cseq := m.CSeq()
	return m.CallID().Value() + " " + string(cseq.MethodName) + " " + strconv.FormatUint(uint64(cseq.SeqNo), 10)
}

func (u *ua) stopRetransmissions() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, stop := range u.pending {
		close(stop)
		delete(u.pending, k)
	}
}

// uri is a SIP URI at host:port over this UA's transport.
func (u *ua) uri(user, hostport string) string {
	switch u.transport {
	case "TCP", "WS", "WSS":
		return "sip:" + user + "@" + hostport + ";transport=" + strings.ToLower(u.transport)
	}
	return "sip:" + user + "@" + hostport
}

// await returns the first message that matches, keeping the others for later.
func (u *ua) await(what string, within time.Duration, match func(sip.Message) bool) sip.Message {
	u.t.Helper()
	for i, m := range u.backlog {
		if match(m) {
			u.backlog = append(u.backlog[:i:i], u.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-u.in:
			if !ok {
				u.t.Fatalf("socket closed awaiting %s", what)
			}
			if match(m) {
				return m
			}
			u.backlog = append(u.backlog, m)
		case <-deadline:
			u.t.Fatalf("no %s within %v; had %d other messages: %s", what, within, len(u.backlog), summary(u.backlog))
		}
	}
}

func summary(ms []sip.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, strings.SplitN(m.String(), "\r\n", 2)[0])
	}
	return strings.Join(s, " | ")
}

// final waits for the final response to the request of method with cseq.
func (u *ua) final(method string, cseq uint32) *sip.Response {
	u.t.Helper()
	return u.response(method, cseq, 0)
}

// response waits for the response of status code (any final when 0) to method/cseq.
func (u *ua) response(method string, cseq uint32, code int) *sip.Response {
	u.t.Helper()
	what := method + " response " + strconv.Itoa(code)
	return u.await(what, 10*time.Second, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		if !ok || string(r.CSeq().MethodName) != method || r.CSeq().SeqNo != cseq {
			return false
		}
		return (code == 0 && r.StatusCode >= 200) || r.StatusCode == code
	}).(*sip.Response)
}

// request waits for a request of method sent to this UA.
func (u *ua) request(method string, within time.Duration) *sip.Request {
	u.t.Helper()
	return u.await(method+" request", within, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && string(r.Method) == method
	}).(*sip.Request)
}

// quiet asserts nothing arrives for d: what a UA must stop sending has stopped.
func (u *ua) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-u.in:
		t.Fatalf("expected silence for %v, got %s", d, strings.SplitN(m.String(), "\r\n", 2)[0])
	case <-time.After(d):
	}
}

// answer responds to req (a request the uas sent this UA).
func (u *ua) answer(req *sip.Request, code int, reason, toTag string, hdrs []string, body string) {
	u.t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\n")
	for _, v := range req.GetHeaders("Via") {
		b.WriteString("Via: " + v.Value() + "\r\n")
	}
	to := req.To().Value()
	if toTag != "" && !req.To().Params.Has("tag") {
		to += ";tag=" + toTag
	}
	b.WriteString("From: " + req.From().Value() + "\r\nTo: " + to + "\r\nCall-ID: " + req.CallID().Value() + "\r\n")
	b.WriteString("CSeq: " + req.CSeq().Value() + "\r\n")
	if code < 300 && req.Method == sip.INVITE {
		b.WriteString("Contact: <" + u.uri("ua", u.addr) + ">\r\n")
	}
	u.send(finish(&b, hdrs, body))
}

func finish(b *strings.Builder, hdrs []string, body string) string {
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	if body != "" && !strings.Contains(strings.Join(hdrs, "\n"), "Content-Type") {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return b.String()
}

// dialog is the caller's side of one call.
type dialog struct {
	u       *ua
	callID  string
	fromTag string
	toTag   string
	cseq    uint32
	ruri    string
	branch  int
}

var callSeq int

// call starts a dialog toward the uas; nothing is sent yet.
func (u *ua) call() *dialog {
	callSeq++
	n := strconv.Itoa(callSeq)
	return &dialog{u: u, callID: "call-" + n + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@test",
		fromTag: "caller" + n, ruri: u.uri("service", u.server)}
}

// req builds a request in the dialog; ACK and CANCEL reuse the INVITE's CSeq,
// others take the next.
func (d *dialog) req(method string, hdrs []string, body string) (string, uint32) {
	if method != "ACK" && method != "CANCEL" {
		d.cseq++
	}
	d.branch++
	to := "<sip:service@" + d.u.server + ">"
	if d.toTag != "" && method != "CANCEL" {
		to += ";tag=" + d.toTag
	}
	var b strings.Builder
	b.WriteString(method + " " + d.ruri + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/" + d.u.transport + " " + d.u.addr + ";branch=z9hG4bK" + d.fromTag + "x" + strconv.Itoa(d.branch) + ";rport\r\n")
	b.WriteString("Max-Forwards: 70\r\nFrom: <sip:caller@" + d.u.addr + ">;tag=" + d.fromTag + "\r\nTo: " + to + "\r\n")
	b.WriteString("Call-ID: " + d.callID + "\r\nCSeq: " + strconv.FormatUint(uint64(d.cseq), 10) + " " + method + "\r\n")
	b.WriteString("Contact: <" + d.u.uri("caller", d.u.addr) + ">\r\n")
	return finish(&b, hdrs, body), d.cseq
}

// do sends a request in the dialog and returns its final response.
func (d *dialog) do(method string, hdrs []string, body string) *sip.Response {
	d.u.t.Helper()
	raw, cseq := d.req(method, hdrs, body)
	d.u.send(raw)
	return d.u.final(method, cseq)
}

// invite sends an INVITE and returns its final response, taking the To tag.
func (d *dialog) invite(hdrs []string, body string) *sip.Response {
	d.u.t.Helper()
	res := d.do("INVITE", hdrs, body)
	if tag, ok := res.To().Params.Get("tag"); ok && d.toTag == "" {
		d.toTag = tag
	}
	return res
}

// ack acknowledges a 2xx to the INVITE with cseq.
func (d *dialog) ack(cseq uint32, body string) {
	saved := d.cseq
	d.cseq = cseq
	raw, _ := d.req("ACK", nil, body)
	d.cseq = saved
	d.u.send(raw)
}

// established makes a call with offer and ACKs it.
func (d *dialog) established(hdrs []string, offer string) *sip.Response {
	d.u.t.Helper()
	res := d.invite(hdrs, offer)
	if res.StatusCode != 200 {
		d.u.t.Fatalf("INVITE: got %d, want 200:\n%s", res.StatusCode, res)
	}
	d.ack(res.CSeq().SeqNo, "")
	return res
}

// roleEvents collects a role's events from a NATS server.
type roleEvents struct {
	t      *testing.T
	source string
	ch     chan *nats.Msg
}

func watchRole(t *testing.T, url, source string) *roleEvents {
	t.Helper()
	nc := testutil.Conn(t, url)
	ch := make(chan *nats.Msg, 256)
	if _, err := nc.ChanSubscribe(wire.Event(source, ">"), ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &roleEvents{t: t, source: source, ch: ch}
}

type roleEvent struct {
	Event       string `json:"event"`
	CallID      string `json:"call_id"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
	InfoPackage string `json:"info_package"`
	Replica     string `json:"replica"`
	Reason      string `json:"reason"`
	Matched     bool   `json:"matched"`
	EndedBy     string `json:"ended_by"`
}

// await returns the next event named name about callID (any call when "").
func (e *roleEvents) await(name, callID string) roleEvent {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-e.ch:
			var ev roleEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				e.t.Fatalf("event %s: %v", m.Subject, err)
			}
			if m.Subject != wire.Event(e.source, ev.Event) {
				e.t.Fatalf("event %s on subject %s", ev.Event, m.Subject)
			}
			if ev.Event == name && (callID == "" || ev.CallID == callID) {
				return ev
			}
		case <-deadline:
			e.t.Fatalf("no %s event for %s within 10s", name, callID)
		}
	}
}
