package proxy

import (
	"github.com/emiago/sipgo/sip"
)

// The response context of one proxied request (RFC 3261 §16.7), as a pure
// state machine in the manner of ersip's proxy: the role feeds it events (a
// response on a branch, the caller's CANCEL, a serial group's timeout) and
// carries out the effects it returns (forward a response upstream, start or
// cancel branches). No sockets, no clock: table tests drive it.

// Target is one place the request is forwarded to (§16.5).
type Target struct {
	URI string
	Q   float64 // preference; targets of one q ring together (parallel), groups in turn
	// Dest, as transport:host:port, is where the branch goes instead of by the
	// SIP rules: a server RFC 3263 found for the Request-URI, which stays.
	Dest string
}

// Effect is what the role must do next. Exactly one field is set. Branch ids
// are 0..n-1 in the order Start effects named their targets.
type Effect struct {
	// Start forwards the request to these targets, one branch each (§16.6).
	Start []Target
	// Forward sends this response upstream, to the caller (§16.7 step 9);
	// Branch is the branch it came from.
	Forward *sip.Response
	Branch  int
	// More goes with a forwarded 2xx while other branches are pending: their
	// 2xx may follow it (wire.HdrMore).
	More bool
	// End says no more 2xx can follow those forwarded with More.
	End bool
	// Cancel CANCELs these pending branches (§16.7 step 10, §16.10).
	Cancel []int
}

// branchState is what one client transaction has given so far.
type branchState struct {
	target    Target
	final     *sip.Response
	made      bool // final synthesized locally (Timer C, transport): it never outranks a real one
	cancelled bool
}

// Context is one server transaction's forwarding state.
type Context struct {
	invite   bool
	groups   [][]Target // serial groups, each rung in parallel
	next     int        // the next group to start
	branches []*branchState
	// done: the final response went upstream (a 2xx, the best final, or a 6xx).
	done bool
	// no new branches: a 2xx or 6xx came, or the caller cancelled (§16.7 step 5, §16.10).
	stopped bool
	// more: a 2xx went up with More, and the End has not.
	more bool
	// failover: the groups are one server each (RFC 3263 §4.3): the next is
	// tried only after a transport error, a timeout or a 503.
	failover bool
}

// NewContext makes the response context of a request forwarded to groups (in
// order; the targets of one group at once).
func NewContext(invite bool, groups [][]Target) *Context {
	return &Context{invite: invite, groups: groups}
}

// NewFailoverContext makes the response context of a request sent to the
// servers RFC 3263 found for its Request-URI, one after another.
func NewFailoverContext(invite bool, servers []Target) *Context {
	c := &Context{invite: invite, failover: true}
	for _, s := range servers {
		c.groups = append(c.groups, []Target{s})
	}
	return c
}

// Start begins: the first group's branches.
func (c *Context) Start() []Effect { return c.startNext() }

func (c *Context) startNext() []Effect {
	if c.stopped || c.next >= len(c.groups) {
		return nil
	}
	group := c.groups[c.next]
	c.next++
	for _, t := range group {
		c.branches = append(c.branches, &branchState{target: t})
	}
	return []Effect{{Start: group}}
}

// MoreGroups reports whether a serial group is still to come.
func (c *Context) MoreGroups() bool { return !c.stopped && c.next < len(c.groups) }

// Done reports whether the final response has gone upstream and no branch is pending.
func (c *Context) Done() bool { return c.done && c.pending() == 0 }

func (c *Context) pending() int {
	n := 0
	for _, b := range c.branches {
		if b.final == nil {
			n++
		}
	}
	return n
}

// Response takes a response on branch id: made is true for one the edge
// synthesized (408 for Timer C or no response, 503 for a transport failure).
func (c *Context) Response(id int, res *sip.Response, made bool) []Effect {
	if id < 0 || id >= len(c.branches) {
		return nil
	}
	b := c.branches[id]
	code := res.StatusCode
	switch {
	// Step 5: provisional responses but 100 go upstream at once, while no final has.
	case code < 200:
		if code == 100 || c.done {
			return nil
		}
		return []Effect{{Forward: res, Branch: id}}
	// Every 2xx goes upstream, also one after the first (another fork's), and
	// stops the rest (§16.7 step 5 and step 10).
	case code < 300:
		if !c.invite && c.done {
			return nil // a non-INVITE has one final upstream (§16.7 step 5)
		}
		if b.final == nil || b.final.StatusCode >= 300 {
			b.final, b.made = res, false
		}
		c.done, c.stopped = true, true
		more := c.invite && c.pending() > 0
		out := append([]Effect{{Forward: res, Branch: id, More: more}}, c.cancelPending()...)
		if c.more && !more {
			c.more = false
			out = append(out, Effect{End: true})
		}
		c.more = c.more || more
		return out
	}
	if b.final != nil {
		return nil // a retransmitted final: the branch has its answer
	}
	b.final, b.made = res, made
	var out []Effect
	if c.more && c.pending() == 0 {
		c.more = false
		out = append(out, Effect{End: true}) // the last pending branch did not answer 2xx
	}
	if code >= 600 && !c.done {
		// A 6xx is not forwarded at once: it CANCELs the pending branches, and
		// starts no new ones; it is the best response once they end (step 6).
		c.stopped = true
		out = append(out, c.cancelPending()...)
	}
	if c.done || c.pending() > 0 {
		return out
	}
	// No branch pending: the next serial group, or the best final (step 6).
	// A server that answered other than 503 is the answer (RFC 3263 §4.3).
	if !c.failover || made || code == 503 {
		if start := c.startNext(); start != nil {
			return append(out, start...)
		}
	}
	c.done = true
	best, from := c.best()
	return append(out, Effect{Forward: best, Branch: from})
}

// Cancel takes the caller's CANCEL (§16.10): every pending branch is
// CANCELled and no new one started; the 487s that follow make the final.
func (c *Context) Cancel() []Effect {
	c.stopped = true
	return c.cancelPending()
}

// GroupTimeout ends a serial group that only rang for too long: its pending
// branches are CANCELled; their 487s bring the next group on.
func (c *Context) GroupTimeout() []Effect {
	return c.cancelPending()
}

func (c *Context) cancelPending() []Effect {
	var ids []int
	for i, b := range c.branches {
		if b.final == nil && !b.cancelled {
			b.cancelled = true
			ids = append(ids, i)
		}
	}
	if len(ids) == 0 || !c.invite {
		return nil // only an INVITE is CANCELled (§9.1)
	}
	return []Effect{{Cancel: ids}}
}

// best is the response step 6 chooses among the branches' finals, with the
// challenges of every 401/407 merged into it (step 7).
func (c *Context) best() (*sip.Response, int) {
	var chosen *branchState
	from := 0
	for i, b := range c.branches {
		if b.final != nil && (chosen == nil || better(b, chosen)) {
			chosen, from = b, i
		}
	}
	res := chosen.final
	code := res.StatusCode
	if code == 401 || code == 407 {
		res = mergeChallenges(res, c.branches)
	}
	if code == 503 {
		// Step 6: a 503 becomes 500, lest the caller take this proxy for unavailable.
		res = res.Clone()
		res.StatusCode, res.Reason = 500, "Server Internal Error"
	}
	return res, from
}

// better applies step 6: a 6xx wins; otherwise the lowest class; within 4xx,
// 401, 407, 415, 420 and 484 first; a real response before one made locally.
func better(a, b *branchState) bool {
	ca, cb := a.final.StatusCode, b.final.StatusCode
	if (ca >= 600) != (cb >= 600) {
		return ca >= 600
	}
	if a.made != b.made {
		return !a.made
	}
	if ca/100 != cb/100 {
		return ca/100 < cb/100
	}
	return preferred(ca) && !preferred(cb)
}

func preferred(code int) bool {
	switch code {
	case 401, 407, 415, 420, 484:
		return true
	}
	return false
}

// mergeChallenges puts every branch's WWW-Authenticate and Proxy-Authenticate
// into res (step 7), once each.
func mergeChallenges(res *sip.Response, branches []*branchState) *sip.Response {
	out := res.Clone()
	seen := map[string]bool{}
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range out.GetHeaders(name) {
			seen[name+":"+h.Value()] = true
		}
	}
	for _, b := range branches {
		if b.final == nil || b.final == res || (b.final.StatusCode != 401 && b.final.StatusCode != 407) {
			continue
		}
		for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
			for _, h := range b.final.GetHeaders(name) {
				if !seen[name+":"+h.Value()] {
					seen[name+":"+h.Value()] = true
					out.AppendHeader(sip.NewHeader(name, h.Value()))
				}
			}
		}
	}
	return out
}
