package memstore

import (
	"context"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// dialogs are records by dialog id, due at Due, gone at Expires.
type dialogs struct{ *records[store.Dialog] }

func newDialogs(now func() time.Time) *dialogs {
	return &dialogs{newRecords(now, func(d *store.Dialog) meta {
		return meta{id: d.ID, version: &d.Version, due: d.Due, expires: d.Expires}
	}, store.ErrDialogExists, store.ErrDialogNotFound, store.ErrDialogConflict)}
}

func (s *dialogs) Due(_ context.Context, now time.Time, limit int) ([]*store.Dialog, error) {
	return s.takeDue(now, limit)
}
