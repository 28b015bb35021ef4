// Package redisstore keeps siphon's state in Redis, shared by every replica of a
// role. Keys carry a {hash tag} so each fact lives in one slot of a Redis Cluster,
// and expiry is Redis's own TTL, so nothing outlives its time if a replica dies.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siphon-lab/siphon/pkg/store"
)

// KeyPrefix starts every key siphon writes.
const KeyPrefix = "siphon:"

// Backend is the Redis store.
type Backend struct {
	rdb redis.UniversalClient
	eph *ephemeral
	loc *location
	sec *secrets
	dlg *dialogs
	sub *subscriptions
	pub *publications
	b2b *bridges
}

// Open connects to url (redis://host:port/db). It does not wait for the server:
// /readyz reports whether it answers.
func Open(url string) (*Backend, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	return New(redis.NewClient(opts)), nil
}

// New wraps a client.
func New(rdb redis.UniversalClient) *Backend {
	return &Backend{rdb: rdb, eph: &ephemeral{rdb: rdb}, loc: &location{rdb: rdb}, sec: &secrets{rdb: rdb}, dlg: newDialogs(rdb), sub: newSubscriptions(rdb), pub: newPublications(rdb), b2b: newBridges(rdb)}
}

// Ephemeral implements store.Backend.
func (b *Backend) Ephemeral() store.Ephemeral { return b.eph }

// Location implements store.Backend.
func (b *Backend) Location() store.Location { return b.loc }

// Dialogs implements store.Backend.
func (b *Backend) Dialogs() store.Dialogs { return b.dlg }

// Subscriptions implements store.Backend.
func (b *Backend) Subscriptions() store.Subscriptions { return b.sub }

// Bridges implements store.Backend.
func (b *Backend) Bridges() store.Bridges { return b.b2b }

// Publications implements store.Backend.
func (b *Backend) Publications() store.Publications { return b.pub }

// Secrets implements store.Backend.
func (b *Backend) Secrets() store.Secrets { return b.sec }

// Ping implements store.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// Close implements store.Backend.
func (b *Backend) Close() error { return b.rdb.Close() }

type ephemeral struct {
	rdb redis.UniversalClient
}

func ephKey(key string) string { return KeyPrefix + "eph:{" + key + "}" }

func (e *ephemeral) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	err := e.rdb.SetArgs(ctx, ephKey(key), 1, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, fmt.Errorf("redisstore: claim %s: %w", key, err)
	}
}

// incrScript increments and, on the first increment only, sets the window, in
// one step: a replica dying between INCR and PEXPIRE would leave a counter that
// never expires.
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

func (e *ephemeral) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	n, err := incrScript.Run(ctx, e.rdb, []string{ephKey(key)}, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: incr %s: %w", key, err)
	}
	return n, nil
}

func (e *ephemeral) Count(ctx context.Context, key string) (int64, error) {
	n, err := e.rdb.Get(ctx, ephKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: %w", key, err)
	}
	return n, nil
}

// Counts pipelines one GET per key: the keys sit in different Cluster slots, so
// no single MGET could read them.
func (e *ephemeral) Counts(ctx context.Context, keys ...string) ([]int64, error) {
	pipe := e.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, ephKey(k))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: counts: %w", err)
	}
	out := make([]int64, len(keys))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisstore: count %s: %w", keys[i], err)
		}
		out[i] = n
	}
	return out, nil
}

func (e *ephemeral) Release(ctx context.Context, key string) error {
	if err := e.rdb.Del(ctx, ephKey(key)).Err(); err != nil {
		return fmt.Errorf("redisstore: release %s: %w", key, err)
	}
	return nil
}
