package memstore

import (
	"context"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// bridges are records by bridge id, due at Due, gone at Expires.
type bridges struct{ *records[store.Bridge] }

func newBridges(now func() time.Time) *bridges {
	return &bridges{newRecords(now, func(b *store.Bridge) meta {
		return meta{id: b.ID, version: &b.Version, due: b.Due, expires: b.Expires}
	}, store.ErrBridgeExists, store.ErrBridgeNotFound, store.ErrBridgeConflict)}
}

func (s *bridges) Due(_ context.Context, now time.Time, limit int) ([]*store.Bridge, error) {
	return s.takeDue(now, limit)
}
