package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

// newWSUA is a UA on a WebSocket (RFC 7118) to server, transport WS or WSS:
// one SIP message per text frame, subprotocol sip.
func newWSUA(t *testing.T, transport, server string) *ua {
	t.Helper()
	scheme := strings.ToLower(transport)
	d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, hs, err := d.Dial(ctx, scheme+"://"+server)
	if err != nil {
		t.Fatalf("%s dial %s: %v", transport, server, err)
	}
	if hs.Protocol != "sip" {
		t.Fatalf("the edge agreed subprotocol %q, want sip (RFC 7118 §4)", hs.Protocol)
	}
	u := &ua{t: t, transport: transport, addr: conn.LocalAddr().String(), server: server, in: make(chan sip.Message, 64)}
	u.write = func(b []byte) error { return wsutil.WriteClientText(conn, b) }
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(u.in)
		for {
			data, err := wsutil.ReadServerText(conn)
			if err != nil {
				return
			}
			if msg, err := sip.ParseMessage(data); err == nil {
				u.in <- msg
			}
		}
	}()
	return u
}

// TestWebSocket: over WS and WSS (RFC 7118) a phone gets OPTIONS answered,
// registers, and the call another phone makes to it comes over its own
// WebSocket, the flow it registered on.
func TestWebSocket(t *testing.T) {
	cert, key := selfSigned(t)
	addrs := map[string]string{}
	for _, tr := range []string{"ws", "wss", "sips"} {
		addrs[tr] = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	}
	p := start(t, true, "--mode", "proxy", "--domain", "example.com", "--ws-bind", addrs["ws"], "--wss-bind", addrs["wss"],
		"--tls-cert", cert, "--tls-key", key, "--sips-bind", addrs["sips"])
	for _, transport := range []string{"WS", "WSS"} {
		t.Run(transport, func(t *testing.T) {
			server := addrs[strings.ToLower(transport)]
			phone := newWSUA(t, transport, server)
			user := "ws" + strings.ToLower(transport)
			ping := phone.call()
			ping.ruri = "sip:" + server + ";transport=" + strings.ToLower(transport) // the lab itself, no user
			wantCode(t, ping.do("OPTIONS", nil, ""), 200)
			phone.send("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/" + transport + " " + phone.addr + ";branch=z9hG4bKwsreg" + user + "\r\n" +
				"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.com>;tag=r1\r\nTo: <sip:" + user + "@example.com>\r\nCall-ID: wsreg-" + user + "\r\n" +
				"CSeq: 1 REGISTER\r\nContact: <" + phone.uri(user, phone.addr) + ">\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n")
			wantCode(t, phone.final("REGISTER", 1), 200)

			caller := newUA(t, p.sip)
			d := caller.call()
			d.ruri = "sip:" + user + "@example.com"
			raw, cseq := d.req("INVITE", nil, offer)
			caller.send(raw)
			inv := phone.request("INVITE", 10*time.Second)
			if top := inv.Via(); top == nil || !strings.EqualFold(top.Transport, transport) {
				t.Fatalf("the INVITE came with Via %v, want %s", top, transport)
			}
			rr := ""
			for _, h := range inv.GetHeaders("Record-Route") {
				if rr != "" {
					rr += ", "
				}
				rr += h.Value()
			}
			phone.answer(inv, 200, "OK", user+"1", []string{"Record-Route: " + rr}, offerWith("1", "0", ""))
			wantCode(t, caller.final("INVITE", cseq), 200)
		})
	}
}

// TestScenarioOverWebSocket: `siphond run` sends over WS and WSS (RFC 7118)
// to a call server listening for them: OPTIONS, a call and its BYE in the
// dialog, over the connection the runner's edge opened.
func TestScenarioOverWebSocket(t *testing.T) {
	cert, key := selfSigned(t)
	ws, wss := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	start(t, true, "--mode", "call-server", "--ws-bind", ws, "--wss-bind", wss, "--tls-cert", cert, "--tls-key", key,
		"--sips-bind", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)))
	for transport, addr := range map[string]string{"ws": ws, "wss": wss} {
		t.Run(transport, func(t *testing.T) {
			target := addr + ";transport=" + transport
			file := filepath.Join(t.TempDir(), "call.json")
			sdp := `v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`
			body := `{"local_uri": "sip:alice@127.0.0.1", "default_transport": "` + transport + `", "steps": [
  {"type": "send", "method": "OPTIONS", "uri": "sip:` + target + `"}, {"type": "expect", "status": 200},
  {"type": "send", "method": "INVITE", "uri": "sip:service@` + target + `", "body": "` + sdp + `"}, {"type": "expect", "status": "2xx"},
  {"type": "send", "method": "BYE", "uri": "sip:service@` + target + `"}, {"type": "expect", "status": 200}]}`
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, out := runOnce(t, file, "--tls-skip-verify"); code != 0 {
				t.Fatalf("siphond run over %s: exit %d\n%s", transport, code, out)
			}
		})
	}
}

// TestWebSocketUpgradeTimeout: a connection to the WebSocket port that never
// finishes its HTTP upgrade is closed at --header-timeout, not kept for the
// idle timeout.
func TestWebSocketUpgradeTimeout(t *testing.T) {
	ws := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	start(t, true, "--mode", "minimal", "--ws-bind", ws, "--header-timeout", "1s", "--idle-timeout", "1m")
	conn := dialFrom(t, "127.0.0.1", ws)
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil { // and never the rest
		t.Fatal(err)
	}
	if !closedByEdge(conn, 5*time.Second) {
		t.Fatal("a WebSocket upgrade left half-sent stayed open past --header-timeout 1s")
	}
}
