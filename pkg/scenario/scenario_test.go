package scenario

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/uac"
)

// TestParseActors: a file of several actors takes the top-level fields as
// their defaults; a wrong field is named with its line, in JSON and YAML.
func TestParseActors(t *testing.T) {
	sc, err := Parse([]byte(`{"local_uri": "sip:lab@example.com", "auth": {"username": "u", "password": "p"},
  "actors": [
    {"name": "bob", "bind": "127.0.0.1:0", "steps": [{"type": "barrier", "name": "up"}, {"type": "expect", "request": "INVITE"}]},
    {"name": "alice", "local_uri": "sip:alice@example.com", "default_transport": "tcp",
     "steps": [{"type": "barrier", "name": "up"}, {"type": "repeat", "count": 2, "steps": [{"type": "send", "method": "OPTIONS", "uri": "sip:bob@x"}]}]}
  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	bob, alice := sc.Actor("bob"), sc.Actor("alice")
	if bob == nil || alice == nil || bob.LocalURI != "sip:lab@example.com" || alice.LocalURI != "sip:alice@example.com" ||
		bob.DefaultTransport != "udp" || alice.DefaultTransport != "tcp" || alice.Auth == nil || alice.Auth.Username != "u" {
		t.Fatalf("actors' defaults: %+v %+v", bob, alice)
	}
	if len(alice.Steps) != 3 || sc.Parties("up") != 2 || sc.Parties("down") != 0 {
		t.Fatalf("alice's steps %d (want 3: the repeat flattened), parties at up %d (want 2)", len(alice.Steps), sc.Parties("up"))
	}
	one, err := Parse([]byte(`{"steps": [{"type": "sleep", "ms": 1}]}`))
	if err != nil || len(one.Actors) != 1 || one.Actors[0].Name != "" || len(one.Steps) != 0 {
		t.Fatalf("a one-party scenario is one actor without a name: %+v, %v", one, err)
	}
	for _, bad := range []struct{ name, src, want string }{
		{"json", "{\"actors\": [\n  {\"name\": \"a\", \"steps\": [{\"type\": \"sleep\"}]},\n  {\"name\": \"b\",\n   \"steps\": [\n     {\"type\": \"send\", \"uri\": \"sip:x\"}]}]}",
			"line 5: field actors[1].steps[0]: (send) method"},
		{"x.yaml", "actors:\n  - name: a\n    steps:\n      - type: sleep\n  - name: a\n    steps:\n      - type: sleep\n",
			`line 5: field actors[1].name: "a"`},
		{"json", `{"actors": [{"name": "a", "bind": "nowhere", "steps": [{"type": "sleep"}]}]}`, `field actors[0].bind: "nowhere"`},
		{"json", `{"steps": [{"type": "sleep"}], "actors": [{"name": "a", "steps": [{"type": "sleep"}]}]}`, "field steps: give steps, or actors"},
		{"json", `{"steps": [{"type": "barrier"}]}`, `field steps[0]: (barrier) name ""`},
		{"x.yml", "steps:\n  - type: sleep\n  - type: expect\n    status: 2yy\n", `line 3: field steps[1]: (expect) status`},
		{"json", "{\"steps\": [\n  {\"type\": \"sleep\",\n   \"colour\": \"red\"}]}", `line 3: json: unknown field "colour"`},
		{"x.yaml", "steps:\n  - type: sleep\n    colour: red\n", `line 3: json: unknown field "colour"`},
	} {
		_, err := ParseFile(bad.name, []byte(bad.src))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.src, err, bad.want)
		}
	}
}

// request is a SIP request as the scenario role gets it from the edge.
func request(t *testing.T, method, callID, toTag string) *sipbus.Request {
	t.Helper()
	to := "<sip:bob@x>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	raw := string(method) + " sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + callID + method +
		"\r\nFrom: <sip:alice@x>;tag=a\r\nTo: " + to + "\r\nCall-ID: " + callID + "\r\nCSeq: 1 " + method + "\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &sipbus.Request{Request: msg.(*sip.Request)}
}

// TestInbox: a new request goes to the call waiting longest for its method,
// or waits for one; the later requests of its Call-ID follow it there; a
// request in a dialog no call holds is refused.
func TestInbox(t *testing.T) {
	clock := clockwork.NewFakeClock()
	in := NewInbox(clock, 5*time.Second)
	first, second := in.open(), in.open()
	if r := first.claim("INVITE"); r != nil {
		t.Fatal("nothing came yet")
	}
	if r := second.claim("INVITE"); r != nil {
		t.Fatal("nothing came yet")
	}
	if !in.Deliver(request(t, "INVITE", "c1", "")) {
		t.Fatal("an INVITE two calls wait for was refused")
	}
	got := <-first.ch
	if got.CallID().Value() != "c1" {
		t.Fatalf("the first call waiting got %s", got.CallID().Value())
	}
	if !in.Deliver(request(t, "ACK", "c1", "b")) || (<-first.ch).Method != sip.ACK {
		t.Fatal("the ACK of c1 went elsewhere")
	}
	if !in.Deliver(request(t, "INVITE", "c2", "")) || (<-second.ch).CallID().Value() != "c2" {
		t.Fatal("the second INVITE did not reach the second waiting call")
	}
	third := in.open()
	if !in.Deliver(request(t, "INVITE", "c3", "")) {
		t.Fatal("a new INVITE nobody waits for yet must be kept")
	}
	if r := third.claim("INVITE"); r == nil || r.CallID().Value() != "c3" {
		t.Fatalf("the kept INVITE: %v", r)
	}
	third.unwant()
	if !in.Deliver(request(t, "INVITE", "c4", "")) {
		t.Fatal("a new INVITE nobody waits for yet must be kept")
	}
	clock.Advance(6 * time.Second) // past the edge's role timeout: it has answered c4 itself
	if r := third.claim("INVITE"); r != nil {
		t.Fatalf("an INVITE kept past the role timeout was handed out: %s", r.CallID().Value())
	}
	if in.Deliver(request(t, "BYE", "gone", "x")) {
		t.Fatal("a BYE in a dialog no call holds must be refused (481)")
	}
	first.close()
	if in.Deliver(request(t, "BYE", "c1", "b")) {
		t.Fatal("a BYE of a call that ended must be refused")
	}
	mine := in.open()
	mine.own("out1") // a dialog the call started: the peer's NOTIFY comes to it
	if !in.Deliver(request(t, "NOTIFY", "out1", "t")) || (<-mine.ch).Method != sip.NOTIFY {
		t.Fatal("a NOTIFY in a dialog the call started did not reach it")
	}
}

// TestLocalBarriers: a barrier opens when its last party comes, per call;
// one whose parties do not all come fails after its time.
func TestLocalBarriers(t *testing.T) {
	clock := clockwork.NewFakeClock()
	b := &LocalBarriers{Clock: clock}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, actor := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Wait(ctx, Meeting{Barrier: "up", Call: 1, Parties: 3, Actor: actor}, time.Second)
		}()
	}
	wg.Wait()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, Meeting{Barrier: "up", Call: 2, Parties: 2, Actor: "a"}, time.Second) }()
	_ = clock.BlockUntilContext(ctx, 4) // the first three parties' timers, and this one's
	clock.Advance(time.Second)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "1 of 2 actors came within 1s") {
		t.Fatalf("a barrier only one party came to: %v", err)
	}
	// The one that gave up is not there for the one that comes later.
	go func() { done <- b.Wait(ctx, Meeting{Barrier: "up", Call: 2, Parties: 2, Actor: "b"}, time.Second) }()
	_ = clock.BlockUntilContext(ctx, 1) // the others fired at the last advance
	clock.Advance(time.Second)
	if err := <-done; err == nil {
		t.Fatal("a barrier passed with its other party gone")
	}
}

// okSender answers every request 200, as a peer would.
type okSender struct{}

func (okSender) Do(_ context.Context, req *sip.Request, _ uac.Via, _ func(uac.Response)) (uac.Response, error) {
	return uac.Response{Response: sip.NewResponseFromRequest(req, 200, "OK", nil)}, nil
}

func (okSender) Invite(_ context.Context, req *sip.Request, _ uac.Via, _ func(*sip.Response) (*sip.Request, error), _ func(uac.Response)) (uac.Response, error) {
	return uac.Response{Response: sip.NewResponseFromRequest(req, 200, "OK", nil)}, nil
}

// TestDistributedRun: a coordinator and workers over a real NATS server:
// the roll call finds a worker per actor (two for the caller, so its calls
// are shared), each barrier is held until both actors are there, and every
// call's steps from both actors are added up; an actor nobody plays stops
// the run with what to start.
func TestDistributedRun(t *testing.T) {
	srv := testutil.NATS(t)
	file := []byte(`{"actors": [
  {"name": "callee", "steps": [{"type": "barrier", "name": "ready"}, {"type": "sleep", "ms": 1}]},
  {"name": "caller", "steps": [{"type": "barrier", "name": "ready"}, {"type": "send", "method": "OPTIONS", "uri": "sip:callee@${addr_callee}"}, {"type": "expect", "status": 200}]}
]}`)
	sc, err := ParseFile("d.json", file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served sync.WaitGroup
	for i, actor := range []string{"callee", "caller", "caller"} {
		w := &Worker{NC: testutil.Conn(t, srv.ClientURL()), Info: WorkerInfo{ID: "w" + string(rune('0'+i)), Actor: actor, Addr: "127.0.0.1:" + string(rune('1'+i)) + "000"},
			Log: testLogger(t), Runner: func(actor string) *Runner {
				return &Runner{Send: okSender{}, IDs: ids.New("seed", actor), Clock: clockwork.NewRealClock(), Vars: map[string]string{}, Actor: actor}
			}}
		served.Add(1)
		go func() { defer served.Done(); _ = w.Serve(ctx) }()
	}
	co := &Coordinator{NC: testutil.Conn(t, srv.ClientURL()), Clock: clockwork.NewRealClock(), RunID: "r1", JoinTimeout: 30 * time.Second, Progress: testWriter{t}}
	// The workers may not have subscribed yet: Join calls the roll again until all three answer.
	var cast Cast
	for len(cast["caller"]) < 2 {
		if cast, err = co.Join(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := co.Run(ctx, sc, file, "d.json", cast, Calls{Calls: 6, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Passed != 6 || sum.Failed != 0 || len(sum.Calls) != 6 {
		t.Fatalf("distributed run: %v", sum)
	}
	for _, c := range sum.Calls {
		if len(c.Steps) != 5 {
			t.Fatalf("call %d has %d steps, want both actors' 5: %v", c.Call, len(c.Steps), c.Steps)
		}
		for _, r := range c.Steps {
			if r.Step.Type == "send" && r.Step.URI != "sip:callee@127.0.0.1:1000" {
				t.Fatalf("${addr_callee} in the caller's send: %s", r.Step.URI)
			}
		}
	}
	lonely, _ := ParseFile("l.json", []byte(`{"actors": [{"name": "nobody", "steps": [{"type": "sleep"}]}]}`))
	co.JoinTimeout = time.Second
	if _, err := co.Join(ctx, lonely); err == nil || !strings.Contains(err.Error(), "--scenario-actor nobody") {
		t.Fatalf("an actor no worker plays: %v", err)
	}
	cancel()
	served.Wait()
}

// testWriter writes to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }
