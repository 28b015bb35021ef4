package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one hash per subscription, siphon:sub:{id}, kept
// store.SubscriptionGrace past its expiry; siphon:sub:exp scores each by its
// expiry (records); siphon:subw:{event resource} is the set of a package's
// and resource's watchers and siphon:subd:{call-id;tag} the set of a
// dialog's subscriptions, a stale member dropped when a read meets it;
// siphon:subc:{call-id;tag} is the dialog's NOTIFY CSeq.
type subscriptions struct{ *records[store.Subscription] }

func watchersKey(event, resource string) string {
	return KeyPrefix + "subw:{" + event + " " + resource + "}"
}

func dialogSetKey(callID, localTag string) string {
	return KeyPrefix + "subd:{" + callID + ";" + localTag + "}"
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
			c.SAdd(ctx, dialogSetKey(s.CallID, s.LocalTag), s.ID)
		},
		unindex: func(ctx context.Context, c redis.Cmdable, s *store.Subscription) {
			c.SRem(ctx, watchersKey(s.Event, s.Resource), s.ID)
			c.SRem(ctx, dialogSetKey(s.CallID, s.LocalTag), s.ID)
		},
		errExists: store.ErrSubscriptionExists, errNotFound: store.ErrSubscriptionNotFound, errConflict: store.ErrSubscriptionConflict,
	}}
}

func (s *subscriptions) Watchers(ctx context.Context, event, resource string) ([]*store.Subscription, error) {
	return s.members(ctx, watchersKey(event, resource))
}

func (s *subscriptions) InDialog(ctx context.Context, callID, localTag string) ([]*store.Subscription, error) {
	return s.members(ctx, dialogSetKey(callID, localTag))
}

// nextCSeqScript: INCR, and the key kept at least ARGV[1] ms from now.
var nextCSeqScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

func (s *subscriptions) NextCSeq(ctx context.Context, callID, localTag string, keep time.Time) (uint32, error) {
	key := KeyPrefix + "subc:{" + callID + ";" + localTag + "}"
	n, err := nextCSeqScript.Run(ctx, s.rdb, []string{key}, max(1, time.Until(keep).Milliseconds())).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: NOTIFY CSeq of %s: %w", key, err)
	}
	return uint32(n), nil
}

func (s *subscriptions) Expired(ctx context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(ctx, now, limit)
}
