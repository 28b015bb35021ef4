package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// busSender plays a role that sends through the edge.
type busSender struct {
	nc       *nats.Conn
	streamer *bus.Streamer
}

func newBusSender(t *testing.T, url string) *busSender {
	t.Helper()
	nc := testutil.Conn(t, url)
	s, err := bus.NewStreamer(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &busSender{nc: nc, streamer: s}
}

// call is the dialog state a test UAC keeps.
type call struct {
	target, toTag string
	cseq          int
}

const sdpOffer = "v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

func (c *call) request(method string, cseq int, body string) []byte {
	to := "<sip:service@" + c.target + ">"
	if c.toTag != "" {
		to += ";tag=" + c.toTag
	}
	head := method + " sip:service@" + c.target + " SIP/2.0\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:tester@127.0.0.1>;tag=sendpath1\r\nTo: " + to + "\r\n" +
		"Call-ID: send-path-1@127.0.0.1\r\nCSeq: " + strconv.Itoa(cseq) + " " + method + "\r\n" +
		"Contact: <sip:tester@127.0.0.1:5999>\r\n"
	if body != "" {
		head += "Content-Type: application/sdp\r\n"
	}
	return []byte(head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

func (r *busSender) invite(target string) *call { return &call{target: target, cseq: 1} }

func (r *busSender) ack(c *call) []byte { return c.request("ACK", c.cseq, "") }

func (r *busSender) bye(c *call) []byte {
	c.cseq++
	return c.request("BYE", c.cseq, "")
}

// send publishes data to an edge's send subject (any edge when edgeID is empty)
// and returns the status codes of every response, the final one last.
func (r *busSender) send(t *testing.T, edgeID, dest string, data any, header ...string) []int {
	t.Helper()
	var payload []byte
	var c *call
	switch d := data.(type) {
	case *call:
		c, payload = d, d.request("INVITE", d.cseq, sdpOffer)
	case []byte:
		payload = d
	}
	subject := wire.EdgeSendAny
	if edgeID != "" {
		subject = wire.EdgeSend(edgeID)
	}
	h := nats.Header{}
	if dest != "" {
		h[wire.HdrDest] = []string{dest}
	}
	for i := 0; i+1 < len(header); i += 2 {
		h[header[i]] = []string{header[i+1]}
	}
	st, err := r.streamer.Open(subject, h, payload)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var codes []int
	for {
		m, err := st.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", codes, err)
		}
		if e := m.Header.Get(wire.HdrError); e != "" {
			t.Logf("edge says: %s", e)
		}
		msg, err := sip.ParseMessage(m.Data)
		if err != nil {
			t.Fatalf("response does not parse: %v\n%s", err, m.Data)
		}
		res := msg.(*sip.Response)
		if res.Via() != nil {
			t.Fatalf("the edge's own Via leaked to the role:\n%s", m.Data)
		}
		codes = append(codes, res.StatusCode)
		if res.StatusCode >= 200 {
			if c != nil {
				c.toTag, _ = res.To().Params.Get("tag")
			}
			return codes
		}
	}
}

// sendStateless publishes data for stateless sending and waits for the edge's ack.
func (r *busSender) sendStateless(t *testing.T, dest string, data []byte) {
	t.Helper()
	m, err := r.nc.RequestMsg(&nats.Msg{Subject: wire.EdgeSendAny, Header: nats.Header{wire.HdrDest: {dest}}, Data: data}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := m.Header.Get("Nats-Service-Error"); e != "" {
		t.Fatalf("edge refused the send: %s", e)
	}
}

func startSIPpUAS(t *testing.T, port int) *testutil.Proc {
	t.Helper()
	bin := testutil.Binary(t, "sipp", "sip-tester")
	p := testutil.Process(t, bin, "-sn", "uas", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "1",
		"-nostdin", "-timeout", "60s", "-timeout_error")
	// Wait until SIPp holds its UDP port.
	deadline := time.Now().Add(10 * time.Second)
	for udpFree(port) {
		if time.Now().After(deadline) {
			t.Fatal("SIPp UAS did not bind")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

func udpFree(port int) bool {
	c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func waitExit(p *testutil.Proc, within time.Duration) error {
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(within):
		return fmt.Errorf("still running after %v", within)
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
