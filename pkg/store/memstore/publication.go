package memstore

import (
	"context"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// publications are records by entity-tag, due at Expires (the watchers'
// NOTIFY), gone store.SubscriptionGrace later, grouped by package and resource.
type publications struct{ *records[store.Publication] }

func newPublications(now func() time.Time) *publications {
	r := newRecords(now, func(v *store.Publication) meta {
		return meta{id: v.ETag, version: &v.Version, due: v.Expires, expires: v.Expires.Add(store.SubscriptionGrace)}
	}, store.ErrPublicationExists, store.ErrPublicationNotFound, nil)
	r.groupsOf = func(v *store.Publication) []string { return []string{watchKey(v.Event, v.Resource)} }
	return &publications{r}
}

func (p *publications) Published(_ context.Context, event, resource string) ([]*store.Publication, error) {
	return p.members(watchKey(event, resource))
}

func (p *publications) Expired(_ context.Context, now time.Time, limit int) ([]*store.Publication, error) {
	return p.takeDue(now, limit)
}
