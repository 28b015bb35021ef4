package redisstore

import (
	"context"
	"errors"
	"fmt"
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

// Watchers reads the set, then every member in one pipeline.
func (s *subscriptions) Watchers(ctx context.Context, event, resource string) ([]*store.Subscription, error) {
	key := watchersKey(event, resource)
	ids, err := s.rdb.SMembers(ctx, key).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.HGet(ctx, s.key(id), "d")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: watchers of %s: %w", key, err)
	}
	var out []*store.Subscription
	for i, g := range gets {
		data, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			s.rdb.SRem(ctx, key, ids[i])
			continue
		}
		if err != nil {
			return out, fmt.Errorf("redisstore: watcher %s: %w", ids[i], err)
		}
		v, err := s.decode(ids[i], data)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *subscriptions) Expired(ctx context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(ctx, now, limit)
}
