package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestCallWithSipgoDialogClient: sipgo's own dialog UA (not our scripted one)
// calls, gets the answer, ACKs and hangs up, over UDP and TCP.
func TestCallWithSipgoDialogClient(t *testing.T) {
	p := start(t, true, "--mode", "call-server")
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			c := client(t)
			dua := sipgo.DialogUA{
				Client:     c,
				ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "sipgo", Host: "127.0.0.1"}},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "service", Host: "127.0.0.1", Port: port(t, p.sip),
				UriParams: sip.HeaderParams{{K: "transport", V: transport}}})
			req.SetBody([]byte(offer))
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			sess, err := dua.WriteInvite(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			var provisional []int
			err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
				provisional = append(provisional, res.StatusCode)
				return nil
			}})
			if err != nil {
				t.Fatalf("after %v: %v", provisional, err)
			}
			if !strings.Contains(string(sess.InviteResponse.Body()), "m=audio 40000 RTP/AVP 0 8 101") {
				t.Fatalf("answer:\n%s", sess.InviteResponse.Body())
			}
			if err := sess.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if err := sess.Bye(ctx); err != nil {
				t.Fatalf("BYE: %v", err)
			}
		})
	}
}

// port is the port of a host:port.
func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
