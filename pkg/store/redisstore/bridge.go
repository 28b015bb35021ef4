package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout (every {…} a ref, records): one record per call, both legs in it,
// siphon:b2b:{id}, gone at its expiry; siphon:b2b:due scores each by when a
// replica must next act on it.
type bridges struct{ *records[store.Bridge] }

func newBridges(rdb redis.UniversalClient) *bridges {
	return &bridges{&records[store.Bridge]{
		rdb: rdb, kind: "bridge", dueKey: KeyPrefix + "b2b:due",
		key:       func(ref string) string { return KeyPrefix + "b2b:{" + ref + "}" },
		meta:      func(b *store.Bridge) meta { return meta{id: b.ID, version: &b.Version, due: b.Due, expires: b.Expires} },
		errExists: store.ErrBridgeExists, errNotFound: store.ErrBridgeNotFound, errConflict: store.ErrBridgeConflict,
	}}
}

func (s *bridges) Due(ctx context.Context, now time.Time, limit int) ([]*store.Bridge, error) {
	return s.takeDue(ctx, now, limit)
}
