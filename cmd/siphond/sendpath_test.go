package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// The send path, played by a test role on a real nats-server against SIPp
// UASs: every response comes back named by its branch, forked 2xx are each
// ACKed, a branch is CANCELled on request, by Timer C, and when the replica
// that asked for it dies.

// sendLab is an edge alone on a nats-server, and a role's UAC on the same bus.
type sendLab struct {
	nats string
	edge *proc
	uac  *uac.Client
}

func newSendLab(t *testing.T, args ...string) *sendLab {
	t.Helper()
	url := testutil.NATSServer(t).URL
	edge := start(t, true, append([]string{"--mode", "minimal", "--role", "edge", "--nats", url, "--edge-id", "edge-s"}, args...)...)
	c, err := uac.New(testutil.Conn(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return &sendLab{nats: url, edge: edge, uac: c}
}

// outCall is the dialog a test role starts as a UAC.
type outCall struct {
	callID, fromTag string
	target          string // host:port of the UAS
}

func newOutCall(target string) *outCall {
	return &outCall{callID: "send-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@test", fromTag: "role1", target: target}
}

// dialog is the UAC's view for requests to the peer that answered with toTag at contact.
func (c *outCall) dialog(toTag, contact string) uac.Dialog {
	if contact == "" {
		contact = "sip:service@" + c.target
	}
	return uac.Dialog{
		CallID: c.callID, LocalURI: "<sip:role@127.0.0.1>", LocalTag: c.fromTag,
		RemoteURI: "<sip:service@" + c.target + ">", RemoteTag: toTag, RemoteTarget: contact,
		Contact: "sip:role@127.0.0.1:5999",
	}
}

func (c *outCall) invite(t *testing.T) *sip.Request {
	t.Helper()
	req, err := c.dialog("", "").Request(sip.INVITE, 1, "application/sdp", []byte(sdpOffer))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// ack builds the ACK of a 2xx (RFC 3261 §13.2.2.4): to the 2xx's Contact, with its tag.
func (c *outCall) ack(res *sip.Response) (*sip.Request, error) {
	tag, _ := res.To().Params.Get("tag")
	contact := ""
	if h := res.Contact(); h != nil {
		contact = h.Address.String()
	}
	return c.dialog(tag, contact).Request(sip.ACK, 1, "", nil)
}

const sdpOffer = "v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// sippUAS runs SIPp as a UAS with scenario (CANCEL_MS in it replaced by
// cancelWithin) on a free port, for one call, and returns it and its address.
func sippUAS(t *testing.T, scenario string, cancelWithin time.Duration) (*testutil.Proc, string) {
	t.Helper()
	bin := testutil.Binary(t, "sipp", "sip-tester")
	src, err := os.ReadFile(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), scenario)
	text := strings.ReplaceAll(string(src), "CANCEL_MS", strconv.FormatInt(cancelWithin.Milliseconds(), 10))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// A free port can be taken by another process before SIPp binds it (the
	// suites run side by side): SIPp then exits at once, and another port is
	// tried. Whether SIPp holds its port is read from /proc, never by binding
	// the port ourselves, which would race SIPp's own bind.
	for attempt := 0; ; attempt++ {
		port := testutil.FreePort(t)
		p := testutil.Process(t, bin, "-sf", path, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "1",
			"-nostdin", "-timeout", "60s", "-timeout_error")
		deadline := time.Now().Add(10 * time.Second)
		for !holdsUDP(p.Cmd.Process.Pid, port) {
			select {
			case <-p.Done():
				if attempt == 5 {
					t.Fatalf("SIPp UAS exited at start 6 times: %v", p.Err())
				}
			default:
				if time.Now().After(deadline) {
					t.Fatal("SIPp UAS did not bind")
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			break
		}
		select {
		case <-p.Done(): // it could not bind: another port
		default:
			return p, fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
}

// holdsUDP reports whether process pid has a UDP socket bound to port: the
// socket's inode in /proc/net/udp is among the process's open files.
func holdsUDP(pid, port int) bool {
	table, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", port)
	var inodes []string
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], want) {
			inodes = append(inodes, "socket:["+f[9]+"]")
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && slices.Contains(inodes, link) {
			return true
		}
	}
	return false
}

// passed waits for SIPp to finish its one call and fails the test unless it
// succeeded (every step of its scenario happened).
func passed(t *testing.T, p *testutil.Proc, name string) {
	t.Helper()
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("SIPp %s failed its scenario: %v", name, err)
		}
	case <-time.After(60 * time.Second): // SIPp's own -timeout ends it before
		t.Fatalf("SIPp %s still running", name)
	}
}

func TestSendPath(t *testing.T) {
	l := newSendLab(t)
	ctx := context.Background()

	t.Run("every response named by its branch, then BYE", func(t *testing.T) {
		sipp, target := sippUAS(t, "uas-answer.xml", 0)
		c := newOutCall(target)
		tx, err := l.uac.Send(c.invite(t), uac.Via{Edge: "edge-s", Dest: "udp:" + target})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		var codes []int
		var ok uac.Response
		for ok.Response == nil {
			res, err := tx.Next(ctx)
			if err != nil {
				t.Fatalf("after %v: %v", codes, err)
			}
			if res.Edge != "edge-s" || !strings.HasPrefix(res.Branch, "z9hG4bK") || res.Via() != nil {
				t.Fatalf("response %d: edge %q branch %q Via %v: want edge-s, its branch, and no Via of the edge's", res.StatusCode, res.Edge, res.Branch, res.Via())
			}
			codes = append(codes, res.StatusCode)
			if res.StatusCode >= 200 {
				ok = res
			}
		}
		if codes[len(codes)-2] != 180 || ok.StatusCode != 200 {
			t.Fatalf("INVITE got %v, want ... 180, 200", codes)
		}
		a, _ := c.ack(ok.Response)
		if err := l.uac.Stateless(ctx, a, uac.Via{Dest: "udp:" + target}); err != nil {
			t.Fatal(err)
		}
		tag, _ := ok.To().Params.Get("tag")
		bye, err := c.dialog(tag, ok.Contact().Address.String()).Request(sip.BYE, 2, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := l.uac.Do(ctx, bye, uac.Via{Dest: "udp:" + target}, nil); err != nil || res.StatusCode != 200 {
			t.Fatalf("BYE: %v %v", res.Response, err)
		}
		passed(t, sipp, "UAS")
	})

	t.Run("two branches both answer: both 2xx reach the role, each ACKed", func(t *testing.T) {
		sippA, a := sippUAS(t, "uas-answer.xml", 0)
		sippB, b := sippUAS(t, "uas-answer.xml", 0)
		c := newOutCall(a) // one call, forked as a proxy forks it: same Call-ID and tags
		type answer struct {
			res uac.Response
			err error
		}
		answers := make(chan answer, 2)
		for _, target := range []string{a, b} {
			req := c.invite(t)
			go func() {
				res, err := l.uac.Invite(ctx, req, uac.Via{Dest: "udp:" + target}, c.ack, nil)
				answers <- answer{res, err}
			}()
		}
		tags := map[string]string{}
		for range 2 {
			got := <-answers
			if got.err != nil || got.res.StatusCode != 200 {
				t.Fatalf("branch: %v %v", got.res.Response, got.err)
			}
			tag, _ := got.res.To().Params.Get("tag")
			tags[got.res.Contact().Address.HostPort()] = tag
		}
		if len(tags) != 2 {
			t.Fatalf("2xx from %v: want one from each UAS", tags)
		}
		for hostport, tag := range tags {
			bye, err := c.dialog(tag, "sip:"+hostport).Request(sip.BYE, 2, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res, err := l.uac.Do(ctx, bye, uac.Via{Dest: "udp:" + hostport}, nil); err != nil || res.StatusCode != 200 {
				t.Fatalf("BYE to %s: %v %v", hostport, res.Response, err)
			}
		}
		passed(t, sippA, "UAS A") // its ACK came, or it would have failed
		passed(t, sippB, "UAS B")
	})

	t.Run("the cancel endpoint CANCELs a ringing branch; the role gets 487", func(t *testing.T) {
		sipp, target := sippUAS(t, "uas-ring.xml", 10*time.Second)
		c := newOutCall(target)
		tx, err := l.uac.Send(c.invite(t), uac.Via{Dest: "udp:" + target})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		final := awaitFinal(t, tx, func(res uac.Response) {
			if res.StatusCode == 180 {
				if err := tx.Cancel(ctx, ""); err != nil {
					t.Fatal(err)
				}
			}
		})
		if final.StatusCode != 487 || final.Synthesized != "" {
			t.Fatalf("cancelled branch: %d (made up by the edge: %q), want the UAS's 487", final.StatusCode, final.Synthesized)
		}
		passed(t, sipp, "UAS") // it got the CANCEL, and the ACK of its 487
		if _, err := tx.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after the 487: %v, want the end of the stream", err)
		}
		// The branch is over: cancelling it again names nothing at the edge.
		if err := tx.Cancel(ctx, ""); err == nil || !strings.Contains(err.Error(), wire.RefuseNoBranch) {
			t.Fatalf("cancel of an ended branch: %v, want refused with %s", err, wire.RefuseNoBranch)
		}
	})
}

// awaitFinal reads tx to its first final response, each provisional to seen.
func awaitFinal(t *testing.T, tx *uac.Tx, seen func(uac.Response)) uac.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		res, err := tx.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode >= 200 {
			return res
		}
		seen(res)
	}
}

// TestTimerC: with --timer-c 2s a branch silent after its 180 is CANCELled
// and the role told 408, not before --timer-c.
func TestTimerC(t *testing.T) {
	const timerC = 2 * time.Second
	l := newSendLab(t, "--timer-c", timerC.String())
	sipp, target := sippUAS(t, "uas-ring.xml", timerC+5*time.Second)
	c := newOutCall(target)
	// The edge starts Timer C after this send: no final can come sooner than
	// --timer-c after it. (The 180 is seen here later than the edge saw it, so
	// it is no bound.)
	sent := time.Now()
	tx, err := l.uac.Send(c.invite(t), uac.Via{Dest: "udp:" + target})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	final := awaitFinal(t, tx, func(uac.Response) {})
	if final.StatusCode != 408 || final.Synthesized != wire.ErrTimerC {
		t.Fatalf("got %d (%q), want 408 from Timer C", final.StatusCode, final.Synthesized)
	}
	if waited := time.Since(sent); waited < timerC {
		t.Fatalf("Timer C fired %v after the INVITE, before --timer-c %v", waited, timerC)
	}
	passed(t, sipp, "UAS") // the CANCEL came within --timer-c + 5 s, and the 487 was ACKed
}

// askerEnv makes the test binary an asking role (TestMain): it sends an
// INVITE through the edge and holds it until it is killed.
const askerEnv = "SIPHON_TEST_ASKER"

// runAsker is the asking replica: NATS URL and destination in askerEnv.
func runAsker(spec string) int {
	url, dest, _ := strings.Cut(spec, " ")
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println("asker:", err)
		return 1
	}
	client, err := uac.New(nc)
	if err != nil {
		fmt.Println("asker:", err)
		return 1
	}
	c := newOutCall(dest)
	req, err := c.dialog("", "").Request(sip.INVITE, 1, "application/sdp", []byte(sdpOffer))
	if err != nil {
		fmt.Println("asker:", err)
		return 1
	}
	tx, err := client.Send(req, uac.Via{Dest: "udp:" + dest})
	if err != nil {
		fmt.Println("asker:", err)
		return 1
	}
	for {
		res, err := tx.Next(context.Background())
		if err != nil {
			fmt.Println("asker:", err)
			return 1
		}
		fmt.Println("asker: got", res.StatusCode)
	}
}

// TestAskerGone: the replica that placed a ringing call dies; the edge
// CANCELs its branch within the bound docs/architecture.md states:
// --sender-check after the replica's connection closes.
func TestAskerGone(t *testing.T) {
	const check = 500 * time.Millisecond
	l := newSendLab(t, "--sender-check", check.String())
	// The UAS waits for the CANCEL from its 180 on; the asker is killed as soon
	// as it has that 180. The bound is one --sender-check, plus 1.5 s for the
	// kill, nats-server noticing the closed socket and the CANCEL crossing
	// loopback on a busy 2-core box.
	sipp, target := sippUAS(t, "uas-ring.xml", check+1500*time.Millisecond)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	asker := exec.Command(self, "-test.run=^$")
	asker.Env = append(os.Environ(), askerEnv+"="+l.nats+" "+target)
	out, err := asker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := asker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = asker.Process.Kill(); _ = asker.Wait() })
	buf := make([]byte, 4096)
	var seen string
	for !strings.Contains(seen, "got 180") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("asker: %v (said %q)", err, seen)
		}
		seen += string(buf[:n])
	}
	if err := asker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	passed(t, sipp, "UAS") // the CANCEL came within the bound
	if n := l.edge.counter(t, "siphon_edge_branches_cancelled_total", "reason", "asker-gone"); n != 1 {
		t.Fatalf("edge counted %v branches cancelled for a gone asker, want 1", n)
	}
}

// readSIP reads one SIP message from a stream connection.
func readSIP(t *testing.T, conn net.Conn) sip.Message {
	t.Helper()
	var data []byte
	buf := make([]byte, 65535)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (have %q)", err, data)
		}
		data = append(data, buf[:n]...)
		if m, err := sip.ParseMessage(data); err == nil {
			return m
		}
	}
}

// TestSendOverTheClientsOwnConnection: a UA behind NAT is reachable only over
// the connection it opened; the edge sends there when a role names the flow.
func TestSendOverTheClientsOwnConnection(t *testing.T) {
	l := newSendLab(t)
	conn, err := net.Dial("tcp", l.edge.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	opt := "OPTIONS sip:siphond@" + l.edge.sip + ";transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP " + local +
		";branch=z9hG4bKflow1\r\nMax-Forwards: 70\r\nFrom: <sip:ua@127.0.0.1>;tag=f1\r\nTo: <sip:siphond@127.0.0.1>\r\n" +
		"Call-ID: flow-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(opt)); err != nil {
		t.Fatal(err)
	}
	readSIP(t, conn) // the edge's 503 (no uas in this lab): the flow exists either way

	done := make(chan uac.Response, 1)
	go func() {
		msg := "MESSAGE sip:ua@" + local + ";transport=tcp SIP/2.0\r\nMax-Forwards: 70\r\n" +
			"From: <sip:lab@127.0.0.1>;tag=m1\r\nTo: <sip:ua@127.0.0.1>\r\nCall-ID: flow-msg-1\r\nCSeq: 1 MESSAGE\r\n" +
			"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
		parsed, _ := sip.ParseMessage([]byte(msg))
		res, err := l.uac.Do(context.Background(), parsed.(*sip.Request), uac.Via{Edge: "edge-s", Flow: wire.Flow("tcp", local)}, nil)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	in := readSIP(t, conn)
	req, ok := in.(*sip.Request)
	if !ok || req.Method != sip.MESSAGE || string(req.Body()) != "hello" {
		t.Fatalf("the UA's connection got %v, want the MESSAGE", in)
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if _, err := conn.Write([]byte(res.String())); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.Response == nil || got.StatusCode != 200 {
		t.Fatalf("MESSAGE over the flow: got %v, want 200", got.Response)
	}
}

// TestNon2xxIsACKed: the edge ACKs a non-2xx final on the branch (RFC 3261
// §17.1.1.3: same branch, the INVITE's top Via) and ACKs it again when it is
// retransmitted, as if the first ACK was lost, within Timer D; the role sees
// the final once, then the end of the stream.
func TestNon2xxIsACKed(t *testing.T) {
	l := newSendLab(t)
	uas, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Close()
	target := uas.LocalAddr().String()
	read := func(within time.Duration) (*sip.Request, *net.UDPAddr) {
		t.Helper()
		buf := make([]byte, 65535)
		_ = uas.SetReadDeadline(time.Now().Add(within))
		n, from, err := uas.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("UAS read: %v", err)
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Request), from
	}
	c := newOutCall(target)
	tx, err := l.uac.Send(c.invite(t), uac.Via{Dest: "udp:" + target})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	inv, edge := read(10 * time.Second)
	busy := sip.NewResponseFromRequest(inv, 486, "Busy Here", nil)
	busy.To().Params.Add("tag", "busy1")
	if _, err := uas.WriteToUDP([]byte(busy.String()), edge); err != nil {
		t.Fatal(err)
	}
	branch, _ := inv.Via().Params.Get("branch")
	for i := range 2 {
		// The retransmission is re-ACKed within Timer D (32 s over UDP).
		ack, _ := read(sip.Timer_D)
		ackBranch, _ := ack.Via().Params.Get("branch")
		if ack.Method != sip.ACK || ackBranch != branch || ack.CSeq().SeqNo != 1 {
			t.Fatalf("ACK %d: %s with branch %s, want ACK on the INVITE's branch %s", i+1, ack.StartLine(), ackBranch, branch)
		}
		if i == 0 {
			if _, err := uas.WriteToUDP([]byte(busy.String()), edge); err != nil { // as if that ACK was lost
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codes []int
	for {
		res, err := tx.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, res.StatusCode)
	}
	if len(codes) == 0 || codes[len(codes)-1] != 486 || (len(codes) > 1 && codes[len(codes)-2] == 486) {
		t.Fatalf("role got %v, want the 486 once, then the end", codes)
	}
}
