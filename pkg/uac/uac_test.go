package uac

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// fakeEdge answers the send path on an in-process NATS server: an INVITE gets
// the branch notice, then the responses script gives, then the stream's end;
// ACKs are taken, a BYE is answered 200. Everything sent is recorded.
type fakeEdge struct {
	got chan string // "METHOD to-tag" of each message the edge was handed
}

func startFakeEdge(t *testing.T, nc *nats.Conn, end bool, script func(inv *sip.Request) []*sip.Response) *fakeEdge {
	t.Helper()
	f := &fakeEdge{got: make(chan string, 16)}
	handle := func(m *nats.Msg) {
		msg, err := sip.ParseMessage(m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		req := msg.(*sip.Request)
		tag, _ := req.To().Params.Get("tag")
		f.got <- string(req.Method) + " " + tag
		h := nats.Header{wire.HdrEdge: {"e1"}, wire.HdrBranch: {"z9hG4bKfake"}}
		switch req.Method {
		case sip.INVITE:
			_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: h})
			for _, res := range script(req) {
				_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: h, Data: []byte(res.String())})
			}
			if end {
				h := nats.Header{wire.HdrEdge: {"e1"}, wire.HdrBranch: {"z9hG4bKfake"}, wire.HdrEnd: {"1"}}
				_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: h})
			}
		case sip.ACK:
			_ = m.Respond(nil)
		default:
			ok := sip.NewResponseFromRequest(req, 200, "OK", nil)
			_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: h, Data: []byte(ok.String())})
		}
	}
	for _, subject := range []string{wire.EdgeSendAny, wire.EdgeSend("e1")} {
		if _, err := nc.Subscribe(subject, handle); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeEdge) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f.got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the fake edge got nothing more within 10 s")
		return ""
	}
}

func answer(inv *sip.Request, code int, tag string) *sip.Response {
	res := sip.NewResponseFromRequest(inv, code, "Answer", nil)
	res.RemoveHeader("Via")
	res.To().Params.Add("tag", tag)
	res.AppendHeader(sip.NewHeader("Contact", "<sip:"+tag+"@192.0.2.9>"))
	return res
}

// TestInviteAcksEveryTwoHundred: the first 2xx is ACKed (and again when it
// comes again); a second fork's 2xx is ACKed and ended with BYE (RFC 3261
// §13.2.2.4).
func TestInviteAcksEveryTwoHundred(t *testing.T) {
	srv := testutil.NATS(t)
	nc := testutil.Conn(t, srv.ClientURL())
	edge := startFakeEdge(t, nc, true, func(inv *sip.Request) []*sip.Response {
		return []*sip.Response{answer(inv, 180, "a"), answer(inv, 200, "a"), answer(inv, 200, "a"), answer(inv, 200, "b")}
	})
	c, err := New(testutil.Conn(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	d := Dialog{CallID: "fork1", LocalURI: "<sip:lab@192.0.2.1>", LocalTag: "l1", RemoteURI: "<sip:bob@example.com>", RemoteTarget: "sip:bob@example.com"}
	inv, err := d.Request(sip.INVITE, 1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ack := func(res *sip.Response) (*sip.Request, error) {
		tag, _ := res.To().Params.Get("tag")
		dd := d
		dd.RemoteTag, dd.RemoteTarget = tag, res.Contact().Address.String()
		return dd.Request(sip.ACK, 1, "", nil)
	}
	res, err := c.Invite(context.Background(), inv, Via{}, ack, nil)
	if err != nil || res.StatusCode != 200 || res.Edge != "e1" || res.Branch != "z9hG4bKfake" {
		t.Fatalf("Invite: %v %v (edge %q branch %q)", res.Response, err, res.Edge, res.Branch)
	}
	want := []string{"INVITE ", "ACK a", "ACK a", "ACK b", "BYE b"}
	for i, w := range want {
		if got := edge.next(t); got != w {
			t.Fatalf("message %d at the edge: %q, want %q (all: %v)", i+1, got, w, want)
		}
	}
}

// TestInviteCancelsWhenTheCallerGivesUp: a context that ends before the final
// response CANCELs the branch at the edge that holds it.
func TestInviteCancelsWhenTheCallerGivesUp(t *testing.T) {
	srv := testutil.NATS(t)
	nc := testutil.Conn(t, srv.ClientURL())
	cancels := make(chan *nats.Msg, 1)
	if _, err := nc.Subscribe(wire.EdgeCancel("e1"), func(m *nats.Msg) { cancels <- m; _ = m.Respond(nil) }); err != nil {
		t.Fatal(err)
	}
	startFakeEdge(t, nc, false, func(inv *sip.Request) []*sip.Response {
		return []*sip.Response{answer(inv, 180, "a")} // and then nothing: a slow far end
	})
	c, err := New(testutil.Conn(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	d := Dialog{CallID: "gaveup1", LocalURI: "<sip:lab@192.0.2.1>", LocalTag: "l1", RemoteURI: "<sip:bob@example.com>", RemoteTarget: "sip:bob@example.com"}
	inv, _ := d.Request(sip.INVITE, 1, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	onRinging := func(Response) { cancel() } // the caller gives up once it rings
	if _, err := c.Invite(ctx, inv, Via{}, func(*sip.Response) (*sip.Request, error) { return nil, nil }, onRinging); err == nil {
		t.Fatal("Invite returned no error for a context that ended")
	}
	select {
	case m := <-cancels:
		if m.Header.Get(wire.HdrBranch) != "z9hG4bKfake" {
			t.Fatalf("cancel for branch %q", m.Header.Get(wire.HdrBranch))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the branch was never cancelled")
	}
}
