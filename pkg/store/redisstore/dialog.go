package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Layout: one hash per dialog, siphon:dlg:{id}, with its revision (v) and JSON
// (d), expiring with the dialog. siphon:dlg:due scores each dialog by when a
// replica must next act on it; the index is the one cross-slot key and is
// written as its own command: pipelined with create and delete, after the
// compare-and-set of an update (which may lose). A stale index entry (a dialog
// deleted meanwhile) is dropped when Due meets it.
const dlgDue = KeyPrefix + "dlg:due"

func dlgKey(id string) string { return KeyPrefix + "dlg:{" + id + "}" }

// createScript: ARGV json, expiry (ms since epoch). Replies 0 if the dialog exists.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1`)

// updateScript: ARGV expected revision, new revision, json, expiry. Replies -1
// when the dialog is gone, 0 when its revision moved on, 1 when stored.
var updateScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1`)

// deleteScript replies the dialog's JSON, or false when it is gone.
var deleteScript = redis.NewScript(`
local d = redis.call('HGET', KEYS[1], 'd')
if d then redis.call('DEL', KEYS[1]) end
return d`)

type dialogs struct {
	rdb redis.UniversalClient
}

// expiry is when Redis drops the dialog's key; a dialog without one lives a day.
func expiry(d *store.Dialog) int64 {
	if d.Expires.IsZero() {
		return time.Now().Add(24 * time.Hour).UnixMilli()
	}
	return d.Expires.UnixMilli()
}

// index puts d in the due index (or takes it out when it has no Due).
func (s *dialogs) index(ctx context.Context, d *store.Dialog) error {
	return s.indexIn(ctx, s.rdb, d).Err()
}

func (s *dialogs) indexIn(ctx context.Context, c redis.Cmdable, d *store.Dialog) *redis.IntCmd {
	if d.Due.IsZero() {
		return c.ZRem(ctx, dlgDue, d.ID)
	}
	return c.ZAdd(ctx, dlgDue, redis.Z{Score: float64(d.Due.UnixMilli()), Member: d.ID})
}

// Create runs the create script and the index write in one round trip: a
// dialog id is a fresh random tag, so the script practically never refuses, and
// when it does the index is put back from the stored dialog.
func (s *dialogs) Create(ctx context.Context, d *store.Dialog) error {
	d.Version = 1
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("redisstore: encode dialog %s: %w", d.ID, err)
	}
	keys, args := []string{dlgKey(d.ID)}, []any{data, expiry(d)}
	pipe := s.rdb.Pipeline()
	created := createScript.EvalSha(ctx, pipe, keys, args...)
	s.indexIn(ctx, pipe, d)
	_, err = pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		created = createScript.Eval(ctx, s.rdb, keys, args...)
		err = created.Err()
		if err == nil {
			err = s.index(ctx, d)
		}
	}
	if err != nil {
		return fmt.Errorf("redisstore: create dialog %s: %w", d.ID, err)
	}
	if ok, _ := created.Int(); ok == 0 {
		if stored, err := s.Get(ctx, d.ID); err == nil {
			_ = s.index(ctx, stored)
		}
		return store.ErrDialogExists
	}
	return nil
}

func (s *dialogs) Get(ctx context.Context, id string) (*store.Dialog, error) {
	data, err := s.rdb.HGet(ctx, dlgKey(id), "d").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrDialogNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get dialog %s: %w", id, err)
	}
	return decodeDialog(id, data)
}

func decodeDialog(id string, data []byte) (*store.Dialog, error) {
	var d store.Dialog
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("redisstore: decode dialog %s: %w", id, err)
	}
	return &d, nil
}

func (s *dialogs) Update(ctx context.Context, d *store.Dialog) error {
	was := d.Version
	d.Version++
	data, err := json.Marshal(d)
	if err != nil {
		d.Version = was
		return fmt.Errorf("redisstore: encode dialog %s: %w", d.ID, err)
	}
	res, err := updateScript.Run(ctx, s.rdb, []string{dlgKey(d.ID)},
		strconv.FormatInt(was, 10), strconv.FormatInt(d.Version, 10), data, expiry(d)).Int()
	if err != nil || res != 1 {
		d.Version = was
	}
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: update dialog %s: %w", d.ID, err)
	case res == -1:
		return store.ErrDialogNotFound
	case res == 0:
		return store.ErrDialogConflict
	}
	if err := s.index(ctx, d); err != nil {
		return fmt.Errorf("redisstore: index dialog %s: %w", d.ID, err)
	}
	return nil
}

// Delete runs the delete script and drops the index entry in one round trip;
// dropping an entry that is not there does nothing.
func (s *dialogs) Delete(ctx context.Context, id string) (*store.Dialog, error) {
	keys := []string{dlgKey(id)}
	pipe := s.rdb.Pipeline()
	deleted := deleteScript.EvalSha(ctx, pipe, keys)
	pipe.ZRem(ctx, dlgDue, id)
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		deleted = deleteScript.Eval(ctx, s.rdb, keys)
		err = deleted.Err()
	}
	if errors.Is(err, redis.Nil) || errors.Is(deleted.Err(), redis.Nil) {
		return nil, store.ErrDialogNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: delete dialog %s: %w", id, err)
	}
	data, err := deleted.Text()
	if err != nil {
		return nil, fmt.Errorf("redisstore: delete dialog %s: %w", id, err)
	}
	return decodeDialog(id, []byte(data))
}

// Due claims each due dialog by removing it from the index: ZREM answers 1 to
// exactly one replica.
func (s *dialogs) Due(ctx context.Context, now time.Time, limit int) ([]*store.Dialog, error) {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: dlgDue, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
		ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	var out []*store.Dialog
	for _, id := range ids {
		n, err := s.rdb.ZRem(ctx, dlgDue, id).Result()
		if err != nil {
			return out, fmt.Errorf("redisstore: claim due dialog %s: %w", id, err)
		}
		if n == 0 {
			continue // another replica took it
		}
		d, err := s.Get(ctx, id)
		if errors.Is(err, store.ErrDialogNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}
