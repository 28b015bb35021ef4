package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// subscriptions are records by subscription id, due at Expires (for the
// terminated NOTIFY), gone store.SubscriptionGrace later, grouped by package
// and resource for Watchers and by dialog for InDialog; each dialog's NOTIFY
// CSeq is a counter beside them.
type subscriptions struct {
	*records[store.Subscription]
	mu    sync.Mutex
	cseqs map[string]*counter
	// pruneAt is the count of counters at which lapsed ones are dropped.
	pruneAt int
}

type counter struct {
	n     uint32
	until time.Time
}

func watchKey(event, resource string) string { return event + " " + resource }

func dialogKey(callID, localTag string) string { return "dialog " + callID + ";" + localTag }

func newSubscriptions(now func() time.Time) *subscriptions {
	r := newRecords(now, func(v *store.Subscription) meta {
		return meta{id: v.ID, version: &v.Version, due: v.Expires, expires: v.Expires.Add(store.SubscriptionGrace)}
	}, store.ErrSubscriptionExists, store.ErrSubscriptionNotFound, store.ErrSubscriptionConflict)
	r.groupsOf = func(v *store.Subscription) []string {
		return []string{watchKey(v.Event, v.Resource), dialogKey(v.CallID, v.LocalTag)}
	}
	return &subscriptions{records: r, cseqs: map[string]*counter{}, pruneAt: 1024}
}

func (s *subscriptions) Watchers(_ context.Context, event, resource string) ([]*store.Subscription, error) {
	return s.members(watchKey(event, resource))
}

func (s *subscriptions) InDialog(_ context.Context, callID, localTag string) ([]*store.Subscription, error) {
	return s.members(dialogKey(callID, localTag))
}

func (s *subscriptions) NextCSeq(_ context.Context, callID, localTag string, keep time.Time) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, k := s.now(), dialogKey(callID, localTag)
	c := s.cseqs[k]
	if c == nil || !now.Before(c.until) {
		c = &counter{}
		s.cseqs[k] = c
		if len(s.cseqs) >= s.pruneAt {
			for key, other := range s.cseqs {
				if !now.Before(other.until) && key != k {
					delete(s.cseqs, key)
				}
			}
			s.pruneAt = max(1024, 2*len(s.cseqs))
		}
	}
	c.n++
	if keep.After(c.until) {
		c.until = keep
	}
	return c.n, nil
}

func (s *subscriptions) Expired(_ context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(now, limit)
}
