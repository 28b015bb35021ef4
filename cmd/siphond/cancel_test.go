package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// CANCEL at the server side (RFC 3261 §9.2): the edge answers 200 itself and
// passes the CANCEL to the replica holding the INVITE, matched by Siphon-Tx;
// the role sends the 487 with the tag of its provisional responses.

// fakeRole is a uas played by the test on the bus: it takes INVITEs and hears
// what reaches its replica subject.
type fakeRole struct {
	nc      *nats.Conn
	invites chan *nats.Msg
	replica chan *nats.Msg
}

func newFakeRole(t *testing.T, url, replica string) *fakeRole {
	t.Helper()
	f := &fakeRole{nc: testutil.Conn(t, url), invites: make(chan *nats.Msg, 4), replica: make(chan *nats.Msg, 4)}
	if _, err := f.nc.ChanSubscribe(wire.SIPRequest(wire.RoleUAS, "INVITE"), f.invites); err != nil {
		t.Fatal(err)
	}
	_, err := f.nc.Subscribe(wire.Replica(wire.RoleUAS, replica), func(m *nats.Msg) {
		if !bus.AnswerProbe(m) { // a role replica answers the edge's liveness checks
			f.replica <- m
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

func receive(t *testing.T, c chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		return nil
	}
}

// respond publishes a response of the role to the INVITE inv, as replica, with tag.
func (f *fakeRole) respond(t *testing.T, inv *nats.Msg, code int, reason, tag string) {
	t.Helper()
	parsed, err := sip.ParseMessage(inv.Data)
	if err != nil {
		t.Fatal(err)
	}
	res := sip.NewResponseFromRequest(parsed.(*sip.Request), code, reason, nil)
	res.To().Params.Add("tag", tag)
	err = f.nc.PublishMsg(&nats.Msg{Subject: inv.Reply, Header: nats.Header{wire.HdrReplica: {"fake-1"}}, Data: []byte(res.String())})
	if err != nil {
		t.Fatal(err)
	}
}

// ringThenCancel makes a call to edge that the role rings with tag, then
// cancels it: it returns the caller, the INVITE's CSeq, the INVITE as the role
// got it, and the 200 to the CANCEL, once the CANCEL has reached the replica.
func (f *fakeRole) ringThenCancel(t *testing.T, edge, tag string) (*ua, uint32, *nats.Msg, *sip.Response) {
	t.Helper()
	u := newUA(t, edge)
	d := u.call()
	raw, cseq := d.req("INVITE", nil, offer)
	u.send(raw)
	inv := receive(t, f.invites, "INVITE at the role")
	f.respond(t, inv, 180, "Ringing", tag)
	u.response("INVITE", cseq, 180)
	d.branch-- // a CANCEL has its INVITE's branch (RFC 3261 §9.1)
	cancel, _ := d.req("CANCEL", nil, "")
	u.send(cancel)
	ok := u.final("CANCEL", cseq)
	wantCode(t, ok, 200)
	receive(t, f.replica, "CANCEL at the replica")
	return u, cseq, inv, ok
}

func TestCancelReachesTheReplica(t *testing.T) {
	url := testutil.NATSServer(t).URL
	edge := start(t, true, "--role", "edge", "--mode", "call-server", "--nats", url, "--role-timeout", "1s")
	role := newFakeRole(t, url, "fake-1")

	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport+": before the role's first response", func(t *testing.T) {
			u := newUA(t, edge.sip)
			if transport == "TCP" {
				u = newTCPUA(t, edge.sip)
			}
			d := u.call()
			raw, cseq := d.req("INVITE", nil, offer)
			u.send(raw)
			inv := receive(t, role.invites, "INVITE at the role")
			tx := inv.Header.Get(wire.HdrTx)
			if tx == "" {
				t.Fatal("the INVITE reached the role without Siphon-Tx")
			}
			d.branch-- // a CANCEL has its INVITE's branch (RFC 3261 §9.1)
			cancel, _ := d.req("CANCEL", nil, "")
			u.send(cancel)
			wantCode(t, u.final("CANCEL", cseq), 200) // at once: the edge answers it
			select {
			case m := <-role.replica:
				t.Fatalf("CANCEL reached the replica before it ever answered: %s", m.Data)
			default:
			}
			// The role answers late; its 180 names its replica, which gets the CANCEL.
			role.respond(t, inv, 180, "Ringing", "role-tag-1")
			u.response("INVITE", cseq, 180)
			m := receive(t, role.replica, "CANCEL at the replica holding the INVITE")
			if c, err := sip.ParseMessage(m.Data); err != nil || c.(*sip.Request).Method != sip.CANCEL || m.Header.Get(wire.HdrTx) != tx {
				t.Fatalf("replica got Siphon-Tx %q (want %q): %s", m.Header.Get(wire.HdrTx), tx, m.Data)
			}
			role.respond(t, inv, 487, "Request Terminated", "role-tag-1")
			res := u.final("INVITE", cseq)
			wantCode(t, res, 487)
			if tag, _ := res.To().Params.Get("tag"); tag != "role-tag-1" {
				t.Fatalf("487 tag %q, want the role's role-tag-1", tag)
			}
		})
	}

	t.Run("a role that does not answer the CANCEL: the edge's 487 with the 180's tag", func(t *testing.T) {
		u, cseq, _, ok := role.ringThenCancel(t, edge.sip, "role-tag-2")
		if tag, _ := ok.To().Params.Get("tag"); tag != "role-tag-2" {
			t.Fatalf("200 to CANCEL tag %q, want the 180's role-tag-2 (RFC 3261 §9.2)", tag)
		}
		res := u.final("INVITE", cseq) // after --role-timeout 1s
		wantCode(t, res, 487)
		if tag, _ := res.To().Params.Get("tag"); tag != "role-tag-2" {
			t.Fatalf("edge's 487 tag %q, want the 180's role-tag-2", tag)
		}
	})

	t.Run("a 2xx that crossed the CANCEL still reaches the caller", func(t *testing.T) {
		u, cseq, inv, _ := role.ringThenCancel(t, edge.sip, "role-tag-3")
		role.respond(t, inv, 200, "OK", "role-tag-3") // answered before it saw the CANCEL
		wantCode(t, u.final("INVITE", cseq), 200)
	})
}

// TestCancelWithSIPp is SIPp's CANCEL scenario against call-server ringing
// for --answer-delay, over UDP and TCP: 200 to the CANCEL, and the 487 to the
// INVITE carries the To tag of the 180 (RFC 3261 §8.2.6.2).
func TestCancelWithSIPp(t *testing.T) {
	p, ev := uasLab(t, "--mode", "call-server", "--answer-delay", "30s")
	for _, transport := range []string{"u1", "t1"} {
		t.Run(transport, func(t *testing.T) {
			dir := t.TempDir()
			sippIn(t, dir, "testdata/call-cancel.xml", transport, p.sip, 5, 10, "-trace_msg").mustPass(t, 5)
			for range 5 {
				ev.await(wire.EventCallCancelled, "")
			}
			logs, _ := filepath.Glob(filepath.Join(dir, "*_messages.log"))
			if len(logs) != 1 {
				t.Fatalf("SIPp message logs: %v", logs)
			}
			trace, err := os.ReadFile(logs[0])
			if err != nil {
				t.Fatal(err)
			}
			tags := responseTags(string(trace))
			if len(tags["180"]) != 5 || len(tags["487"]) != 5 {
				t.Fatalf("SIPp saw %d 180s and %d 487s, want 5 each", len(tags["180"]), len(tags["487"]))
			}
			for callID, tag := range tags["487"] {
				if tags["180"][callID] != tag {
					t.Errorf("call %s: 487 tag %q, 180 tag %q: want one tag", callID, tag, tags["180"][callID])
				}
				if tags["200"][callID] == "" {
					t.Errorf("call %s: no 200 to its CANCEL", callID)
				}
			}
		})
	}
}

var (
	statusLine = regexp.MustCompile(`(?m)^SIP/2\.0 (\d{3}) `)
	toTagRe    = regexp.MustCompile(`(?mi)^(?:To|t):[^\r\n]*;tag=([^;\s>]+)`)
	callIDRe   = regexp.MustCompile(`(?mi)^(?:Call-ID|i):\s*(\S+)`)
)

// responseTags reads a SIPp message trace: status code → Call-ID → To tag of
// the responses SIPp received.
func responseTags(trace string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, block := range strings.Split(trace, "message received")[1:] {
		m := statusLine.FindStringSubmatch(block)
		tag, id := toTagRe.FindStringSubmatch(block), callIDRe.FindStringSubmatch(block)
		if m == nil || tag == nil || id == nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]string{}
		}
		out[m[1]][id[1]] = tag[1]
	}
	return out
}
