package memstore

import (
	"context"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// subscriptions are records by subscription id, due at Expires (for the
// terminated NOTIFY), gone store.SubscriptionGrace later, with the ids of
// each package's and resource's watchers beside them.
type subscriptions struct {
	*records[store.Subscription]
	watchers map[string]map[string]bool // event+resource → ids; under mu
}

func watchKey(event, resource string) string { return event + " " + resource }

func newSubscriptions(now func() time.Time) *subscriptions {
	s := &subscriptions{watchers: map[string]map[string]bool{}}
	s.records = newRecords(now, func(v *store.Subscription) meta {
		return meta{id: v.ID, version: &v.Version, due: v.Expires, expires: v.Expires.Add(store.SubscriptionGrace)}
	}, store.ErrSubscriptionExists, store.ErrSubscriptionNotFound, store.ErrSubscriptionConflict)
	s.index = func(id string, v *store.Subscription) {
		k := watchKey(v.Event, v.Resource)
		if s.watchers[k] == nil {
			s.watchers[k] = map[string]bool{}
		}
		s.watchers[k][id] = true
	}
	s.unindex = func(id string, v *store.Subscription) {
		k := watchKey(v.Event, v.Resource)
		delete(s.watchers[k], id)
		if len(s.watchers[k]) == 0 {
			delete(s.watchers, k)
		}
	}
	return s
}

func (s *subscriptions) Watchers(_ context.Context, event, resource string) ([]*store.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Subscription
	for id := range s.watchers[watchKey(event, resource)] {
		it, ok := s.live(id)
		if !ok {
			continue
		}
		v, err := it.decode()
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *subscriptions) Expired(_ context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(now, limit)
}
