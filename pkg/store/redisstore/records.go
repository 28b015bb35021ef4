package redisstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Scripts on one record: a string, its revision, a colon and its JSON
// ("3:{...}"), which Redis drops at its expiry. A string, not a hash: a JSON
// over 64 bytes makes a hash a full hashtable, 200 bytes more per record.

// createScript: ARGV json, expiry (ms since epoch). Replies 0 if the record exists.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], '1:' .. ARGV[1], 'PXAT', ARGV[2])
return 1`)

// updateScript: ARGV expected revision, new revision, json, expiry. Replies -1
// when the record is gone, 0 when its revision moved on, 1 when stored.
var updateScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if string.match(cur, '^(%d+):') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PXAT', ARGV[4])
return 1`)

// claimScript: ARGV ref, now (ms). Takes ref off the due index if it is due
// still (a refresh since the read moved it later): 1 to exactly one caller.
var claimScript = redis.NewScript(`
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)

// deleteScript replies the record, or false when it is gone.
var deleteScript = redis.NewScript(`
local d = redis.call('GET', KEYS[1])
if d then redis.call('DEL', KEYS[1]) end
return d`)

// body is a stored record's JSON, without its revision.
func body(stored []byte) []byte {
	if i := bytes.IndexByte(stored, ':'); i >= 0 {
		return stored[i+1:]
	}
	return stored
}

// records is what dialogs and subscriptions share: a string per record,
// compare-and-set by script, and a sorted set of when each is due — the one
// cross-slot key, written as its own command: pipelined with create and
// delete, after the compare-and-set of an update (which may lose). A stale
// index entry (a record deleted meanwhile) is dropped when takeDue meets it.
type records[T any] struct {
	rdb  redis.UniversalClient
	kind string // for errors: "dialog", "subscription"
	// key is where the record with ref (ref(id)) lives.
	key    func(ref string) string
	dueKey string
	meta   func(*T) meta
	// index and unindex add a kind's own index commands to a pipeline; an
	// index holds refs.
	index, unindex func(ctx context.Context, c redis.Cmdable, v *T, ref string)
	// The kind's errors.
	errExists, errNotFound, errConflict error
}

// meta is what records read of a value: its id, its version, when it is due
// (zero: never) and when Redis drops it.
type meta struct {
	id      string
	version *int64
	due     time.Time
	expires time.Time
}

// ref is what stands for a record's id in its key and in every index: 16
// characters of its SHA-256, base64url (96 bits: no collision in any lab's
// lifetime). Ids are Call-IDs, tags and more, often over 60 bytes; a short
// ref keeps index hashes in Redis's compact encoding (members up to 64
// bytes) and takes a third off a subscription's memory. The record's JSON
// keeps the id.
func ref(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// indexIn puts v in the due index (or takes it out when it has no due time),
// and in the kind's own index.
func (r *records[T]) indexIn(ctx context.Context, c redis.Cmdable, v *T) {
	m := r.meta(v)
	rf := ref(m.id)
	if m.due.IsZero() {
		c.ZRem(ctx, r.dueKey, rf)
	} else {
		c.ZAdd(ctx, r.dueKey, redis.Z{Score: float64(m.due.UnixMilli()), Member: rf})
	}
	if r.index != nil {
		r.index(ctx, c, v, rf)
	}
}

func (r *records[T]) reindex(ctx context.Context, v *T) error {
	pipe := r.rdb.Pipeline()
	r.indexIn(ctx, pipe, v)
	_, err := pipe.Exec(ctx)
	return err
}

// Create runs the create script and the index writes in one round trip: an
// id is practically always fresh, and when the script refuses, the index is
// put back from the stored record.
func (r *records[T]) Create(ctx context.Context, v *T) error {
	m := r.meta(v)
	*m.version = 1
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("redisstore: encode %s %s: %w", r.kind, m.id, err)
	}
	keys, args := []string{r.key(ref(m.id))}, []any{data, m.expires.UnixMilli()}
	pipe := r.rdb.Pipeline()
	created := createScript.EvalSha(ctx, pipe, keys, args...)
	r.indexIn(ctx, pipe, v)
	_, err = pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		created = createScript.Eval(ctx, r.rdb, keys, args...)
		err = created.Err()
		if err == nil {
			err = r.reindex(ctx, v)
		}
	}
	if err != nil {
		return fmt.Errorf("redisstore: create %s %s: %w", r.kind, m.id, err)
	}
	if ok, _ := created.Int(); ok == 0 {
		if stored, err := r.Get(ctx, m.id); err == nil {
			_ = r.reindex(ctx, stored)
		}
		return r.errExists
	}
	return nil
}

// Get returns the record id.
func (r *records[T]) Get(ctx context.Context, id string) (*T, error) {
	return r.get(ctx, ref(id))
}

func (r *records[T]) get(ctx context.Context, rf string) (*T, error) {
	data, err := r.rdb.Get(ctx, r.key(rf)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, r.errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s %s: %w", r.kind, rf, err)
	}
	return r.decode(rf, data)
}

// decode reads a stored record.
func (r *records[T]) decode(rf string, stored []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(body(stored), v); err != nil {
		return nil, fmt.Errorf("redisstore: decode %s %s: %w", r.kind, rf, err)
	}
	return v, nil
}

// Update stores v if the stored version is v's, incrementing both.
func (r *records[T]) Update(ctx context.Context, v *T) error {
	m := r.meta(v)
	was := *m.version
	*m.version++
	data, err := json.Marshal(v)
	if err != nil {
		*m.version = was
		return fmt.Errorf("redisstore: encode %s %s: %w", r.kind, m.id, err)
	}
	res, err := updateScript.Run(ctx, r.rdb, []string{r.key(ref(m.id))},
		strconv.FormatInt(was, 10), strconv.FormatInt(*m.version, 10), data, m.expires.UnixMilli()).Int()
	if err != nil || res != 1 {
		*m.version = was
	}
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: update %s %s: %w", r.kind, m.id, err)
	case res == -1:
		return r.errNotFound
	case res == 0:
		return r.errConflict
	}
	if err := r.reindex(ctx, v); err != nil {
		return fmt.Errorf("redisstore: index %s %s: %w", r.kind, m.id, err)
	}
	return nil
}

// Delete runs the delete script and drops the due entry in one round trip
// (dropping one that is not there does nothing), then the kind's own index.
func (r *records[T]) Delete(ctx context.Context, id string) (*T, error) {
	rf := ref(id)
	keys := []string{r.key(rf)}
	pipe := r.rdb.Pipeline()
	deleted := deleteScript.EvalSha(ctx, pipe, keys)
	pipe.ZRem(ctx, r.dueKey, rf)
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		deleted = deleteScript.Eval(ctx, r.rdb, keys)
		err = deleted.Err()
	}
	if errors.Is(err, redis.Nil) || errors.Is(deleted.Err(), redis.Nil) {
		return nil, r.errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: delete %s %s: %w", r.kind, id, err)
	}
	data, err := deleted.Text()
	if err != nil {
		return nil, fmt.Errorf("redisstore: delete %s %s: %w", r.kind, id, err)
	}
	v, err := r.decode(id, []byte(data))
	if err != nil {
		return nil, err
	}
	if r.unindex != nil {
		pipe := r.rdb.Pipeline()
		r.unindex(ctx, pipe, v, rf)
		if _, err := pipe.Exec(ctx); err != nil {
			return v, fmt.Errorf("redisstore: unindex %s %s: %w", r.kind, id, err)
		}
	}
	return v, nil
}

// members reads the refs in the hash at indexKey (a kind's index: a ref per
// field; a hash, not a set, because Redis 7.0 keeps even a one-member set of
// strings as a full hashtable), then every record in one pipeline; an id
// whose record is gone is dropped from the index.
//
// The two reads are not one snapshot: a record replaced meanwhile (a
// publication's refresh stores the new one, then deletes the old) can be
// gone from the first while its successor is missing from the index read.
// So a read that found a listed record gone is taken again, until one is
// whole: the index then names the successor. (One Lua script would be atomic, but
// the index and its records hash to different cluster slots.)
func (r *records[T]) members(ctx context.Context, indexKey string) ([]*T, error) {
	var most []*T
	for range membersTries {
		out, vanished, err := r.readMembers(ctx, indexKey)
		if err != nil || !vanished {
			return out, err
		}
		if len(out) > len(most) {
			most = out
		}
	}
	return most, nil // churning still: the fullest read
}

// membersTries bounds how often members reads again after a record vanished.
const membersTries = 20

// readMembers is one read of members; vanished says a listed record was gone.
func (r *records[T]) readMembers(ctx context.Context, indexKey string) (out []*T, vanished bool, err error) {
	refs, err := r.rdb.HKeys(ctx, indexKey).Result()
	if err != nil || len(refs) == 0 {
		return nil, false, err
	}
	pipe := r.rdb.Pipeline()
	gets := make(map[string]*redis.StringCmd, len(refs))
	for _, rf := range refs {
		if rf != counterField {
			gets[rf] = pipe.Get(ctx, r.key(rf))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("redisstore: members of %s: %w", indexKey, err)
	}
	for rf, g := range gets {
		data, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			r.rdb.HDel(ctx, indexKey, rf)
			vanished = true
			continue
		}
		if err != nil {
			return out, false, fmt.Errorf("redisstore: %s %s: %w", r.kind, rf, err)
		}
		v, err := r.decode(rf, data)
		if err != nil {
			return out, false, err
		}
		out = append(out, v)
	}
	return out, vanished, nil
}

// counterField is a field of an index hash that is not a member: a
// subscription dialog's NOTIFY CSeq.
const counterField = "#cseq"

// takeDue claims each due record by removing it from the index, if it is
// due still: the script answers 1 to exactly one replica.
func (r *records[T]) takeDue(ctx context.Context, now time.Time, limit int) ([]*T, error) {
	refs, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: r.dueKey, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
		ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	var out []*T
	for _, rf := range refs {
		n, err := claimScript.Run(ctx, r.rdb, []string{r.dueKey}, rf, now.UnixMilli()).Int()
		if err != nil {
			return out, fmt.Errorf("redisstore: claim due %s %s: %w", r.kind, rf, err)
		}
		if n == 0 {
			continue // another replica took it
		}
		v, err := r.get(ctx, rf)
		if errors.Is(err, r.errNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}
