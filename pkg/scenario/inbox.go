package scenario

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/sipbus"
)

// unclaimedMax bounds the new requests an inbox keeps for calls that do not
// wait for them yet.
const unclaimedMax = 1024

// Inbox hands the requests that come to one actor's edge to the calls that
// run its steps, as SIPp hands a new call to a new scenario instance: a
// request of a Call-ID a call owns (a dialog it made or answered) goes to
// that call; a new one to the call that has waited longest for its method,
// or is kept until one does.
type Inbox struct {
	clock  clockwork.Clock
	maxAge time.Duration

	mu        sync.Mutex
	owner     map[string]*mailbox // by Call-ID
	waiting   []*mailbox          // calls waiting for a new request, oldest first
	unclaimed []kept
}

// kept is a new request no call waited for when it came.
type kept struct {
	r  *sipbus.Request
	at time.Time
}

// NewInbox is an empty inbox whose kept requests last maxAge (the edge's
// --role-timeout: it has answered one older than that itself).
func NewInbox(clock clockwork.Clock, maxAge time.Duration) *Inbox {
	return &Inbox{clock: clock, maxAge: maxAge, owner: map[string]*mailbox{}}
}

// Deliver hands r to its call; false when none takes it: a request in a
// dialog no call owns, or more new ones kept than unclaimedMax.
func (in *Inbox) Deliver(r *sipbus.Request) bool {
	callID := ""
	if h := r.CallID(); h != nil {
		callID = h.Value()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if mb, ok := in.owner[callID]; ok {
		return mb.put(r)
	}
	if r.To() != nil && r.To().Params.Has("tag") {
		return false // in a dialog, but one no call holds (any more)
	}
	for i, mb := range in.waiting {
		if mb.want == string(r.Method) {
			in.waiting = append(in.waiting[:i], in.waiting[i+1:]...)
			mb.want = ""
			in.ownLocked(mb, callID)
			return mb.put(r)
		}
	}
	in.dropStaleLocked()
	if len(in.unclaimed) >= unclaimedMax {
		return false
	}
	in.unclaimed = append(in.unclaimed, kept{r: r, at: in.clock.Now()})
	return true
}

// dropStaleLocked forgets the kept requests the edge has answered itself.
func (in *Inbox) dropStaleLocked() {
	i := 0
	for i < len(in.unclaimed) && in.clock.Since(in.unclaimed[i].at) > in.maxAge {
		i++
	}
	in.unclaimed = in.unclaimed[i:]
}

func (in *Inbox) ownLocked(mb *mailbox, callID string) {
	if callID != "" {
		in.owner[callID] = mb
		mb.callIDs = append(mb.callIDs, callID)
	}
}

// open is a mailbox for one call.
func (in *Inbox) open() *mailbox {
	return &mailbox{in: in, ch: make(chan *sipbus.Request, 64)}
}

// mailbox is one call's part of an inbox.
type mailbox struct {
	in      *Inbox
	ch      chan *sipbus.Request
	want    string // the method it waits for, while it is in in.waiting
	callIDs []string
}

func (mb *mailbox) put(r *sipbus.Request) bool {
	select {
	case mb.ch <- r:
		return true
	default:
		return false
	}
}

// own makes callID's requests this call's (a dialog it starts).
func (mb *mailbox) own(callID string) {
	mb.in.mu.Lock()
	mb.in.ownLocked(mb, callID)
	mb.in.mu.Unlock()
}

// claim takes a kept new request of method, or else puts the call among
// those waiting for one: it comes on mb.ch.
func (mb *mailbox) claim(method string) *sipbus.Request {
	in := mb.in
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dropStaleLocked()
	for i, k := range in.unclaimed {
		if r := k.r; string(r.Method) == method {
			in.unclaimed = append(in.unclaimed[:i], in.unclaimed[i+1:]...)
			if h := r.CallID(); h != nil {
				in.ownLocked(mb, h.Value())
			}
			return r
		}
	}
	if mb.want == "" {
		in.waiting = append(in.waiting, mb)
	}
	mb.want = method
	return nil
}

// unwant takes the call off the waiting list.
func (mb *mailbox) unwant() {
	in := mb.in
	in.mu.Lock()
	defer in.mu.Unlock()
	mb.unwantLocked()
}

func (mb *mailbox) unwantLocked() {
	if mb.want == "" {
		return
	}
	for i, w := range mb.in.waiting {
		if w == mb {
			mb.in.waiting = append(mb.in.waiting[:i], mb.in.waiting[i+1:]...)
			break
		}
	}
	mb.want = ""
}

// close gives up the call's Call-IDs (their later requests have no call)
// and returns the requests that came to it and were not taken.
func (mb *mailbox) close() []*sipbus.Request {
	in := mb.in
	in.mu.Lock()
	mb.unwantLocked()
	for _, id := range mb.callIDs {
		if in.owner[id] == mb {
			delete(in.owner, id)
		}
	}
	in.mu.Unlock()
	var left []*sipbus.Request
	for {
		select {
		case r := <-mb.ch:
			left = append(left, r)
		default:
			return left
		}
	}
}
