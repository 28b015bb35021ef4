package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one hash per subscription, siphon:sub:{id}, kept
// store.SubscriptionGrace past its expiry; siphon:sub:exp scores each by its
// expiry (records); siphon:subw:{event resource} is the set of a package's
// and resource's watchers, a stale member dropped when Watchers meets it.
type subscriptions struct{ *records[store.Subscription] }

func watchersKey(event, resource string) string {
	return KeyPrefix + "subw:{" + event + " " + resource + "}"
}

func newSubscriptions(rdb redis.UniversalClient) *subscriptions {
	return &subscriptions{&records[store.Subscription]{
		rdb: rdb, kind: "subscription", dueKey: KeyPrefix + "sub:exp",
		key: func(id string) string { return KeyPrefix + "sub:{" + id + "}" },
		meta: func(s *store.Subscription) meta {
			return meta{id: s.ID, version: &s.Version, due: s.Expires, expires: s.Expires.Add(store.SubscriptionGrace)}
		},
		index: func(ctx context.Context, c redis.Cmdable, s *store.Subscription) {
			c.SAdd(ctx, watchersKey(s.Event, s.Resource), s.ID)
		},
		unindex: func(ctx context.Context, c redis.Cmdable, s *store.Subscription) {
			c.SRem(ctx, watchersKey(s.Event, s.Resource), s.ID)
		},
		errExists: store.ErrSubscriptionExists, errNotFound: store.ErrSubscriptionNotFound, errConflict: store.ErrSubscriptionConflict,
	}}
}

func (s *subscriptions) Watchers(ctx context.Context, event, resource string) ([]*store.Subscription, error) {
	return s.members(ctx, watchersKey(event, resource))
}

func (s *subscriptions) Expired(ctx context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(ctx, now, limit)
}
