package proxy

import (
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func res(code int, hdrs ...string) *sip.Response {
	r := sip.NewResponse(code, "R")
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.AppendHeader(sip.NewHeader(hdrs[i], hdrs[i+1]))
	}
	return r
}

func targets(qs ...float64) []Target {
	var out []Target
	for _, q := range qs {
		out = append(out, Target{URI: "sip:ua@192.0.2.1", Q: q})
	}
	return out
}

// forwarded is the codes of the Forward effects, cancelled the branch ids of the Cancel ones.
func split(effects []Effect) (forwarded []int, cancelled []int, started int) {
	for _, e := range effects {
		switch {
		case e.Forward != nil:
			forwarded = append(forwarded, e.Forward.StatusCode)
		case e.Cancel != nil:
			cancelled = append(cancelled, e.Cancel...)
		case e.Start != nil:
			started += len(e.Start)
		}
	}
	return
}

type step struct {
	branch int
	res    *sip.Response
	made   bool
	cancel bool // the caller's CANCEL instead of a response

	forwarded []int
	cancelled []int
	started   int
}

func run(t *testing.T, c *Context, steps []step) {
	t.Helper()
	for i, s := range steps {
		var effects []Effect
		if s.cancel {
			effects = c.Cancel()
		} else {
			effects = c.Response(s.branch, s.res, s.made)
		}
		f, x, n := split(effects)
		if !slices.Equal(f, s.forwarded) || !slices.Equal(x, s.cancelled) || n != s.started {
			t.Fatalf("step %d: forwarded %v cancelled %v started %d; want %v %v %d", i+1, f, x, n, s.forwarded, s.cancelled, s.started)
		}
	}
}

// TestResponseContext follows RFC 3261 §16.7's steps on a forked INVITE.
func TestResponseContext(t *testing.T) {
	tests := []struct {
		name   string
		groups [][]Target
		steps  []step
	}{
		{"provisionals but 100 go up at once; one answers, the others are CANCELled", [][]Target{targets(1, 1, 1)}, []step{
			{branch: 0, res: res(100)},
			{branch: 1, res: res(180), forwarded: []int{180}},
			{branch: 2, res: res(200), forwarded: []int{200}, cancelled: []int{0, 1}},
			{branch: 0, res: res(487)},
			{branch: 1, res: res(180)}, // after the final: nothing more goes up but 2xx
			{branch: 1, res: res(487)},
		}},
		{"two 2xx from a fork both go up", [][]Target{targets(1, 1)}, []step{
			{branch: 0, res: res(200), forwarded: []int{200}, cancelled: []int{1}},
			{branch: 1, res: res(200), forwarded: []int{200}},
			{branch: 0, res: res(200), forwarded: []int{200}}, // a retransmission too
		}},
		{"the best final waits for every branch: lowest class", [][]Target{targets(1, 1, 1)}, []step{
			{branch: 0, res: res(503)},
			{branch: 1, res: res(486)},
			{branch: 2, res: res(500), forwarded: []int{486}},
		}},
		{"a 503 goes up as 500", [][]Target{targets(1)}, []step{
			{branch: 0, res: res(503), forwarded: []int{500}},
		}},
		{"a local 408 or 503 never outranks a real 486", [][]Target{targets(1, 1, 1)}, []step{
			{branch: 0, res: res(408), made: true},
			{branch: 1, res: res(503), made: true},
			{branch: 2, res: res(486), forwarded: []int{486}},
		}},
		{"401/407 preferred within 4xx", [][]Target{targets(1, 1)}, []step{
			{branch: 0, res: res(404)},
			{branch: 1, res: res(407), forwarded: []int{407}},
		}},
		{"a 6xx CANCELs the ringing branches and wins", [][]Target{targets(1, 1), targets(0.5)}, []step{
			{branch: 0, res: res(180), forwarded: []int{180}},
			{branch: 1, res: res(603), cancelled: []int{0}},
			{branch: 0, res: res(487), forwarded: []int{603}}, // and the q=0.5 group never starts
		}},
		{"serial by q: the next group after the first fails", [][]Target{targets(1), targets(0.5)}, []step{
			{branch: 0, res: res(486), started: 1},
			{branch: 1, res: res(200), forwarded: []int{200}},
		}},
		{"the caller's CANCEL reaches every branch; the 487 goes up", [][]Target{targets(1, 1), targets(0.5)}, []step{
			{branch: 0, res: res(180), forwarded: []int{180}},
			{cancel: true, cancelled: []int{0, 1}},
			{branch: 0, res: res(487)},
			{branch: 1, res: res(487), forwarded: []int{487}},
		}},
		{"a 2xx crossing the CANCEL still goes up", [][]Target{targets(1)}, []step{
			{cancel: true, cancelled: []int{0}},
			{branch: 0, res: res(200), forwarded: []int{200}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewContext(true, tt.groups)
			if _, _, n := split(c.Start()); n != len(tt.groups[0]) {
				t.Fatalf("started %d, want the first group's %d", n, len(tt.groups[0]))
			}
			run(t, c, tt.steps)
			if !c.Done() {
				t.Fatal("context not done after the last branch ended")
			}
		})
	}
}

// TestChallengesMerged: step 7 — the 401/407 that goes up carries the
// challenges of every branch.
func TestChallengesMerged(t *testing.T) {
	c := NewContext(true, [][]Target{targets(1, 1)})
	c.Start()
	c.Response(0, res(407, "Proxy-Authenticate", `Digest realm="a", nonce="1"`), false)
	effects := c.Response(1, res(407, "Proxy-Authenticate", `Digest realm="b", nonce="2"`), false)
	if len(effects) != 1 || effects[0].Forward == nil {
		t.Fatalf("effects %+v", effects)
	}
	if got := effects[0].Forward.GetHeaders("Proxy-Authenticate"); len(got) != 2 {
		t.Fatalf("407 carries %d challenges, want both realms", len(got))
	}
}

// TestGroupTimeout: a serial group that only rings is CANCELled; the next starts.
func TestGroupTimeout(t *testing.T) {
	c := NewContext(true, [][]Target{targets(1), targets(0.5)})
	c.Start()
	c.Response(0, res(180), false)
	if _, x, _ := split(c.GroupTimeout()); !slices.Equal(x, []int{0}) {
		t.Fatalf("group timeout cancelled %v", x)
	}
	if _, _, n := split(c.Response(0, res(487), false)); n != 1 {
		t.Fatal("the next group did not start after the first was cancelled")
	}
}

// TestNonInviteIsNeverCancelled: §9.1 — only INVITE branches get CANCEL; and
// a non-INVITE has one final upstream, with no "more 2xx" (§16.7 step 5).
func TestNonInviteIsNeverCancelled(t *testing.T) {
	c := NewContext(false, [][]Target{targets(1, 1)})
	c.Start()
	effects := c.Response(0, res(200), false)
	if f, x, _ := split(effects); !slices.Equal(f, []int{200}) || len(x) != 0 || effects[0].More {
		t.Fatalf("MESSAGE fork: forwarded %v cancelled %v, more %v", f, x, effects[0].More)
	}
	if f, _, _ := split(c.Response(1, res(202), false)); len(f) != 0 {
		t.Fatalf("the other branch's 2xx went up too: %v", f)
	}
}

// TestMoreAndEnd: a 2xx that goes up while other branches are pending says
// more may follow; the edge is told the end once none is pending, whether the
// last answered 2xx (both reach the caller) or 487.
func TestMoreAndEnd(t *testing.T) {
	flags := func(effects []Effect) (more, end []bool) {
		for _, e := range effects {
			if e.Forward != nil {
				more = append(more, e.More)
			}
			if e.End {
				end = append(end, true)
			}
		}
		return
	}
	for _, last := range []int{200, 487} {
		c := NewContext(true, [][]Target{targets(1, 1)})
		c.Start()
		more, end := flags(c.Response(0, res(200), false))
		if !slices.Equal(more, []bool{true}) || len(end) != 0 {
			t.Fatalf("first 2xx with a branch pending: more %v end %v", more, end)
		}
		more, end = flags(c.Response(1, res(last), false))
		wantMore := []bool(nil)
		if last == 200 {
			wantMore = []bool{false}
		}
		if !slices.Equal(more, wantMore) || len(end) != 1 {
			t.Fatalf("last branch's %d: more %v end %v, want forwarded %v and one end", last, more, end, wantMore)
		}
	}
	c := NewContext(true, [][]Target{targets(1)})
	c.Start()
	if more, end := flags(c.Response(0, res(200), false)); !slices.Equal(more, []bool{false}) || len(end) != 0 {
		t.Fatalf("a lone branch's 2xx: more %v end %v, want neither", more, end)
	}
}

// TestFailover: the servers RFC 3263 found are tried in turn, the next only
// after a transport error, a timeout or a 503 (RFC 3263 §4.3).
func TestFailover(t *testing.T) {
	servers := []Target{{Dest: "udp:192.0.2.1:5060"}, {Dest: "udp:192.0.2.2:5060"}}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"a transport error, then an answer", []step{
			{branch: 0, res: res(503), made: true, started: 1},
			{branch: 1, res: res(200), forwarded: []int{200}},
		}},
		{"a real 503, then a 486", []step{
			{branch: 0, res: res(503), started: 1},
			{branch: 1, res: res(486), forwarded: []int{486}},
		}},
		{"a real 486 is the answer", []step{
			{branch: 0, res: res(486), forwarded: []int{486}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewFailoverContext(false, servers)
			if _, _, n := split(c.Start()); n != 1 {
				t.Fatalf("started %d servers at once, want 1", n)
			}
			run(t, c, tt.steps)
		})
	}
}
