package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one hash per publication, siphon:pub:{etag}, kept
// store.SubscriptionGrace past its expiry; siphon:pub:exp scores each by its
// expiry; siphon:pubr:{event resource} is the set of a resource's
// publications of a package.
type publications struct{ *records[store.Publication] }

func publishedKey(event, resource string) string {
	return KeyPrefix + "pubr:{" + event + " " + resource + "}"
}

func newPublications(rdb redis.UniversalClient) *publications {
	return &publications{&records[store.Publication]{
		rdb: rdb, kind: "publication", dueKey: KeyPrefix + "pub:exp",
		key: func(etag string) string { return KeyPrefix + "pub:{" + etag + "}" },
		meta: func(p *store.Publication) meta {
			return meta{id: p.ETag, version: &p.Version, due: p.Expires, expires: p.Expires.Add(store.SubscriptionGrace)}
		},
		index: func(ctx context.Context, c redis.Cmdable, p *store.Publication) {
			c.SAdd(ctx, publishedKey(p.Event, p.Resource), p.ETag)
		},
		unindex: func(ctx context.Context, c redis.Cmdable, p *store.Publication) {
			c.SRem(ctx, publishedKey(p.Event, p.Resource), p.ETag)
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
