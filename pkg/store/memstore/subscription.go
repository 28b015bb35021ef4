package memstore

import (
	"context"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// subscriptions are records by subscription id, due at Expires (for the
// terminated NOTIFY), gone store.SubscriptionGrace later, grouped by package
// and resource for Watchers.
type subscriptions struct{ *records[store.Subscription] }

func watchKey(event, resource string) string { return event + " " + resource }

func newSubscriptions(now func() time.Time) *subscriptions {
	r := newRecords(now, func(v *store.Subscription) meta {
		return meta{id: v.ID, version: &v.Version, due: v.Expires, expires: v.Expires.Add(store.SubscriptionGrace)}
	}, store.ErrSubscriptionExists, store.ErrSubscriptionNotFound, store.ErrSubscriptionConflict)
	r.group = func(v *store.Subscription) string { return watchKey(v.Event, v.Resource) }
	return &subscriptions{r}
}

func (s *subscriptions) Watchers(_ context.Context, event, resource string) ([]*store.Subscription, error) {
	return s.members(watchKey(event, resource))
}

func (s *subscriptions) Expired(_ context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(now, limit)
}
