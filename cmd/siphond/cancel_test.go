package main

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// TestEdgePassesCancelToReplica checks the bus contract for CANCEL with a role
// played by the test: the caller cancels before the role has answered at all;
// the edge answers 200 and 487 itself, and once the role's first response names
// its replica, the CANCEL is delivered to that replica's subject.
func TestEdgePassesCancelToReplica(t *testing.T) {
	url := testutil.NATSServer(t).URL
	edge := start(t, true, "--role", "edge", "--mode", "call-server", "--nats", url)
	nc := testutil.Conn(t, url)
	invites := make(chan *nats.Msg, 1)
	if _, err := nc.ChanSubscribe(wire.SIPRequest("uas", "INVITE"), invites); err != nil {
		t.Fatal(err)
	}
	cancels := make(chan *nats.Msg, 1)
	if _, err := nc.ChanSubscribe(wire.Replica("uas", "fake-1"), cancels); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	u := newUA(t, edge.sip)
	d := u.call()
	raw, cseq := d.req("INVITE", nil, offer)
	u.send(raw)
	var inv *nats.Msg
	select {
	case inv = <-invites:
	case <-time.After(5 * time.Second):
		t.Fatal("the INVITE never reached the role")
	}
	d.branch-- // a CANCEL has its INVITE's branch (RFC 3261 §9.1)
	cancel, _ := d.req("CANCEL", nil, "")
	u.send(cancel)
	wantCode(t, u.final("CANCEL", cseq), 200)
	wantCode(t, u.final("INVITE", cseq), 487)
	select {
	case m := <-cancels:
		t.Fatalf("CANCEL reached the replica before it ever answered: %s", m.Data)
	default:
	}

	// The role answers late; its 180 names its replica.
	parsed, err := sip.ParseMessage(inv.Data)
	if err != nil {
		t.Fatal(err)
	}
	ringing := sip.NewResponseFromRequest(parsed.(*sip.Request), 180, "Ringing", nil)
	err = nc.PublishMsg(&nats.Msg{Subject: inv.Reply, Header: nats.Header{wire.HdrReplica: {"fake-1"}}, Data: []byte(ringing.String())})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-cancels:
		msg, err := sip.ParseMessage(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		c := msg.(*sip.Request)
		if c.Method != sip.CANCEL || c.CallID().Value() != d.callID || m.Header.Get(wire.HdrEdge) == "" {
			t.Fatalf("replica got %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the CANCEL never reached the replica holding the INVITE")
	}
}
