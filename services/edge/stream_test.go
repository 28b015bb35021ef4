package edge

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const streamInvite = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKs1\r\n" +
	"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: s1\r\nCSeq: 1 INVITE\r\n" +
	"Content-Length: 4\r\n\r\nv=0\n"

const streamCancel = "CANCEL sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKs1\r\n" +
	"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: s1\r\nCSeq: 1 CANCEL\r\n" +
	"l: 0\r\n\r\n"

// framed runs what the peer writes, chunk by chunk, over a real loopback TCP
// connection through the edge's framing, and returns what sipgo would read
// and what the edge wrote back to the peer. The peer half-closes after its
// last chunk; the edge side closes once it has read everything, so both reads
// end at EOF: nothing here waits on a clock.
func framed(t *testing.T, e *Edge, chunks ...string) (toSipgo, toPeer string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	edgeSide, err := e.streamListener(ln, TCP).Accept()
	if err != nil {
		t.Fatal(err)
	}
	back := make(chan string, 1)
	go func() {
		for _, ch := range chunks {
			if _, err := peer.Write([]byte(ch)); err != nil {
				t.Error(err)
			}
		}
		_ = peer.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(peer) // the 200 to a CANCEL, if any, until the edge side closes
		back <- string(b)
	}()
	var got bytes.Buffer
	_, _ = io.Copy(&got, edgeSide)
	edgeSide.Close()
	return got.String(), <-back
}

func TestStreamFramingTakesCancel(t *testing.T) {
	e := testEdge()
	inv := &inviteRelay{key: "z9hG4bKs1|192.0.2.1:5060", cancelled: make(chan *sip.Request, 1), toTag: "uas-7"}
	e.invites.m[inv.key] = inv
	// The messages split at awkward places, a keep-alive between them.
	all := streamInvite + "\r\n\r\n" + streamCancel + streamInvite
	toSipgo, toPeer := framed(t, e, all[:17], all[17:len(streamInvite)+3], all[len(streamInvite)+3:])
	if toSipgo != streamInvite+"\r\n\r\n"+streamInvite {
		t.Fatalf("sipgo reads %q, want both INVITEs and the keep-alive, without the CANCEL", toSipgo)
	}
	if !strings.HasPrefix(toPeer, "SIP/2.0 200 OK\r\n") || !strings.Contains(toPeer, "tag=uas-7") || !strings.Contains(toPeer, "CSeq: 1 CANCEL") {
		t.Fatalf("the peer got %q, want the 200 to its CANCEL with the provisional's tag", toPeer)
	}
	select {
	case c := <-inv.cancelled:
		if c.CallID().Value() != "s1" {
			t.Fatalf("relay got %s", c.StartLine())
		}
	default:
		t.Fatal("the CANCEL never reached the INVITE's relay")
	}
}

func TestStreamFramingPassesWhatItCannotFrame(t *testing.T) {
	e := testEdge()
	// A CANCEL for no INVITE here goes on to sipgo (which answers 481).
	if got, back := framed(t, e, streamCancel); got != streamCancel || back != "" {
		t.Fatalf("unmatched CANCEL: sipgo reads %q, peer got %q", got, back)
	}
	// Where sipgo might find another message boundary than the edge would
	// (a broken, doubled or oversized Content-Length), the bytes from there on
	// pass as they came, and a CANCEL in them is sipgo's to find.
	e.invites.m["z9hG4bKs1|192.0.2.1:5060"] = &inviteRelay{key: "z9hG4bKs1|192.0.2.1:5060", cancelled: make(chan *sip.Request, 1)}
	for name, bad := range map[string]string{
		"not a number": strings.Replace(streamInvite, "Content-Length: 4", "Content-Length: four", 1),
		"twice":        strings.Replace(streamInvite, "Content-Length: 4", "Content-Length: 4\r\nl: 0", 1),
	} {
		if got, back := framed(t, e, bad, streamCancel); got != bad+streamCancel || back != "" {
			t.Errorf("%s: sipgo reads %q, peer got %q", name, got, back)
		}
	}
	// A folded line that looks like Content-Length is the header above it.
	folded := strings.Replace(streamInvite, "Call-ID: s1\r\n", "Call-ID: s1\r\nSubject: a\r\n Content-Length: 99\r\n", 1)
	if got, _ := framed(t, e, folded); got != folded {
		t.Errorf("folded line taken for Content-Length: sipgo reads %q", got)
	}
}

// TestStreamFramingAnswersTooLarge: a message over --max-message-size is
// answered 513 (RFC 3261 §21.5.14) and its bytes skipped as they come, in
// however many reads; the next message on the connection goes on to sipgo.
func TestStreamFramingAnswersTooLarge(t *testing.T) {
	e := testEdge()
	body := strings.Repeat("x", 70000)
	big := strings.Replace(streamInvite, "Content-Length: 4\r\n\r\nv=0\n", "Content-Length: 70000\r\n\r\n"+body, 1)
	all := big + streamInvite
	toSipgo, toPeer := framed(t, e, all[:300], all[300:40000], all[40000:])
	if toSipgo != streamInvite {
		t.Fatalf("sipgo reads %d bytes (%.60q), want only the INVITE after the large one", len(toSipgo), toSipgo)
	}
	if !strings.HasPrefix(toPeer, "SIP/2.0 513 Message Too Large\r\n") || !strings.Contains(toPeer, "CSeq: 1 INVITE") {
		t.Fatalf("the peer got %q, want a 513 to its INVITE", toPeer)
	}
}

// TestStreamFramingAnswersMalformed: a request the grammar checks refuse is
// answered on the connection (400, as over UDP) and left out; the next one
// goes on to sipgo, which would have closed the connection instead.
func TestStreamFramingAnswersMalformed(t *testing.T) {
	e := testEdge()
	bad := strings.Replace(streamInvite, "Call-ID: s1\r\n", "Call-ID: s1\r\nContact: 1170 <%s%s:noone@sip.no.invalid>\r\n", 1)
	toSipgo, toPeer := framed(t, e, bad+streamInvite)
	if toSipgo != streamInvite {
		t.Fatalf("sipgo reads %q, want only the well-formed INVITE", toSipgo)
	}
	if !strings.HasPrefix(toPeer, "SIP/2.0 400 Bad Request\r\n") || !strings.Contains(toPeer, "in contact") {
		t.Fatalf("the peer got %q, want a 400 naming the Contact", toPeer)
	}
}
