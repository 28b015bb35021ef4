package memstore

import (
	"container/heap"
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// location keeps bindings per AOR under one lock: a REGISTER's changes apply
// all together or not at all, as in redisstore's script. A heap orders every
// expiry written, so the sweep finds what is due without scanning every AOR;
// entries made stale by a refresh or removal are skipped when they surface.
type location struct {
	mu       sync.Mutex
	aors     map[string]map[string]store.Binding // aor → contact → binding
	expiries expiryHeap
}

func newLocation() *location { return &location{aors: map[string]map[string]store.Binding{}} }

type expiry struct {
	at           time.Time
	aor, contact string
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (l *location) Register(_ context.Context, reg store.Registration, now time.Time) (store.Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.aors[reg.AOR]
	live := func(c string) (store.Binding, bool) {
		b, ok := cur[c]
		return b, ok && b.Expires.After(now)
	}
	stale := func(b store.Binding) bool { return b.CallID == reg.CallID && b.CSeq >= reg.CSeq }
	// RFC 3261 §10.3 step 7, checked for every binding touched before any change.
	if reg.Wildcard {
		for c := range cur {
			if b, ok := live(c); ok && stale(b) {
				return store.Outcome{}, store.ErrOutOfOrder
			}
		}
	}
	for _, ch := range reg.Changes {
		if b, ok := live(ch.Binding.Contact); ok && stale(b) {
			return store.Outcome{}, store.ErrOutOfOrder
		}
	}
	if cur == nil {
		cur = map[string]store.Binding{}
		l.aors[reg.AOR] = cur
	}
	var out store.Outcome
	// Drop what has expired first, as redisstore's script does, and hand it
	// to the caller to announce.
	for c, b := range cur {
		if !b.Expires.After(now) {
			out.Expired = append(out.Expired, b)
			delete(cur, c)
		}
	}
	if reg.Wildcard {
		for c, b := range cur {
			out.Removed = append(out.Removed, b)
			delete(cur, c)
		}
	}
	for _, ch := range reg.Changes {
		old, existed := live(ch.Binding.Contact)
		switch {
		case ch.Remove:
			if existed {
				out.Removed = append(out.Removed, old)
			}
			delete(cur, ch.Binding.Contact)
		case existed:
			cur[ch.Binding.Contact] = ch.Binding
			out.Refreshed = append(out.Refreshed, ch.Binding)
		default:
			cur[ch.Binding.Contact] = ch.Binding
			out.Added = append(out.Added, ch.Binding)
		}
		if !ch.Remove {
			heap.Push(&l.expiries, expiry{at: ch.Binding.Expires, aor: reg.AOR, contact: ch.Binding.Contact})
		}
	}
	out.Current = liveBindings(cur, now)
	if len(cur) == 0 {
		delete(l.aors, reg.AOR)
	}
	return out, nil
}

func (l *location) Lookup(_ context.Context, aor string, now time.Time) ([]store.Binding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return liveBindings(l.aors[aor], now), nil
}

func (l *location) Expire(_ context.Context, now time.Time, limit int) ([]store.Binding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Binding
	for len(l.expiries) > 0 && len(out) < limit && !l.expiries[0].at.After(now) {
		e := heap.Pop(&l.expiries).(expiry)
		cur := l.aors[e.aor]
		b, ok := cur[e.contact]
		if !ok || !b.Expires.Equal(e.at) {
			continue // refreshed or removed since this entry was written
		}
		out = append(out, b)
		delete(cur, e.contact)
		if len(cur) == 0 {
			delete(l.aors, e.aor)
		}
	}
	return out, nil
}

func liveBindings(cur map[string]store.Binding, now time.Time) []store.Binding {
	out := make([]store.Binding, 0, len(cur))
	for _, b := range cur {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	store.SortByQ(out)
	return out
}

type secrets struct {
	mu     sync.Mutex
	values map[string][]byte
}

func (s *secrets) Secret(_ context.Context, name string, size int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[name]; ok {
		return v, nil
	}
	v := make([]byte, size)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	s.values[name] = v
	return v, nil
}
