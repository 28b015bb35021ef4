package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout (every {…} a ref, records): one record per subscription,
// siphon:sub:{id}, kept store.SubscriptionGrace past its expiry;
// siphon:sub:exp scores each by its expiry; siphon:subw:{event resource}
// indexes a package's and resource's watchers and siphon:subd:{call-id;tag} a dialog's
// subscriptions (a stale member dropped when a read meets it), and holds
// the dialog's NOTIFY CSeq (field #cseq), kept as long as a subscription
// in it may still NOTIFY.
type subscriptions struct{ *records[store.Subscription] }

func watchersKey(event, resource string) string {
	return KeyPrefix + "subw:{" + ref(event+" "+resource) + "}"
}

func dialogKey(callID, localTag string) string {
	return KeyPrefix + "subd:{" + ref(callID+";"+localTag) + "}"
}

func newSubscriptions(rdb redis.UniversalClient) *subscriptions {
	return &subscriptions{&records[store.Subscription]{
		rdb: rdb, kind: "subscription", dueKey: KeyPrefix + "sub:exp",
		key: func(ref string) string { return KeyPrefix + "sub:{" + ref + "}" },
		meta: func(s *store.Subscription) meta {
			return meta{id: s.ID, version: &s.Version, due: s.Expires, expires: s.Expires.Add(store.SubscriptionGrace)}
		},
		index: func(ctx context.Context, c redis.Cmdable, s *store.Subscription, ref string) {
			c.HSet(ctx, watchersKey(s.Event, s.Resource), ref, "")
			c.HSet(ctx, dialogKey(s.CallID, s.LocalTag), ref, "")
		},
		unindex: func(ctx context.Context, c redis.Cmdable, s *store.Subscription, ref string) {
			c.HDel(ctx, watchersKey(s.Event, s.Resource), ref)
			c.HDel(ctx, dialogKey(s.CallID, s.LocalTag), ref)
		},
		errExists: store.ErrSubscriptionExists, errNotFound: store.ErrSubscriptionNotFound, errConflict: store.ErrSubscriptionConflict,
	}}
}

func (s *subscriptions) Watchers(ctx context.Context, event, resource string) ([]*store.Subscription, error) {
	return s.members(ctx, watchersKey(event, resource))
}

func (s *subscriptions) InDialog(ctx context.Context, callID, localTag string) ([]*store.Subscription, error) {
	return s.members(ctx, dialogKey(callID, localTag))
}

// nextCSeqScript: the dialog's CSeq field incremented, and the key kept at
// least ARGV[1] ms from now.
var nextCSeqScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], '` + counterField + `', 1)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

func (s *subscriptions) NextCSeq(ctx context.Context, callID, localTag string, keep time.Time) (uint32, error) {
	key := dialogKey(callID, localTag)
	n, err := nextCSeqScript.Run(ctx, s.rdb, []string{key}, max(1, time.Until(keep).Milliseconds())).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: NOTIFY CSeq of %s: %w", key, err)
	}
	return uint32(n), nil
}

func (s *subscriptions) Expired(ctx context.Context, now time.Time, limit int) ([]*store.Subscription, error) {
	return s.takeDue(ctx, now, limit)
}
