package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one record per dialog, siphon:dlg:{id}, expiring with the dialog (a
// day when it has no expiry); siphon:dlg:due scores each dialog by when a
// replica must next act on it (records).
type dialogs struct{ *records[store.Dialog] }

func newDialogs(rdb redis.UniversalClient) *dialogs {
	return &dialogs{&records[store.Dialog]{
		rdb: rdb, kind: "dialog", dueKey: KeyPrefix + "dlg:due",
		key: func(ref string) string { return KeyPrefix + "dlg:{" + ref + "}" },
		meta: func(d *store.Dialog) meta {
			expires := d.Expires
			if expires.IsZero() {
				expires = time.Now().Add(24 * time.Hour)
			}
			return meta{id: d.ID, version: &d.Version, due: d.Due, expires: expires}
		},
		errExists: store.ErrDialogExists, errNotFound: store.ErrDialogNotFound, errConflict: store.ErrDialogConflict,
	}}
}

func (s *dialogs) Due(ctx context.Context, now time.Time, limit int) ([]*store.Dialog, error) {
	return s.takeDue(ctx, now, limit)
}
