package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout (every {…} a ref, records): one record per publication, siphon:pub:{etag}, kept
// store.SubscriptionGrace past its expiry; siphon:pub:exp scores each by its
// expiry; siphon:pubr:{event resource} indexes a resource's publications of
// a package.
type publications struct{ *records[store.Publication] }

func publishedKey(event, resource string) string {
	return KeyPrefix + "pubr:{" + ref(event+" "+resource) + "}"
}

func newPublications(rdb redis.UniversalClient) *publications {
	return &publications{&records[store.Publication]{
		rdb: rdb, kind: "publication", dueKey: KeyPrefix + "pub:exp",
		key: func(ref string) string { return KeyPrefix + "pub:{" + ref + "}" },
		meta: func(p *store.Publication) meta {
			return meta{id: p.ETag, version: &p.Version, due: p.Expires, expires: p.Expires.Add(store.SubscriptionGrace)}
		},
		index: func(ctx context.Context, c redis.Cmdable, p *store.Publication, ref string) {
			c.HSet(ctx, publishedKey(p.Event, p.Resource), ref, "")
		},
		unindex: func(ctx context.Context, c redis.Cmdable, p *store.Publication, ref string) {
			c.HDel(ctx, publishedKey(p.Event, p.Resource), ref)
		},
		errExists: store.ErrPublicationExists, errNotFound: store.ErrPublicationNotFound,
	}}
}

func (p *publications) Published(ctx context.Context, event, resource string) ([]*store.Publication, error) {
	return p.members(ctx, publishedKey(event, resource))
}

func (p *publications) Expired(ctx context.Context, now time.Time, limit int) ([]*store.Publication, error) {
	return p.takeDue(ctx, now, limit)
}
