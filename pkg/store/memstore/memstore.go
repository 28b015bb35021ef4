// Package memstore keeps siphon's state in this process's memory: the embedded
// default when --redis is empty. It passes the same conformance suite as
// redisstore, so a lab behaves the same with either.
package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Backend is the in-memory store.
type Backend struct {
	eph *ephemeral
	loc *location
	sec *secrets
	dlg *dialogs
	sub *subscriptions
	pub *publications
	b2b *bridges
}

// New returns an empty in-memory backend. now is the clock; nil means time.Now.
func New(now func() time.Time) *Backend {
	if now == nil {
		now = time.Now
	}
	return &Backend{
		eph: &ephemeral{now: now, items: map[string]item{}},
		loc: newLocation(),
		sec: &secrets{values: map[string][]byte{}},
		dlg: newDialogs(now),
		sub: newSubscriptions(now),
		pub: newPublications(now),
		b2b: newBridges(now),
	}
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

// Ping implements store.Backend; memory is always there.
func (b *Backend) Ping(context.Context) error { return nil }

// Close implements store.Backend.
func (b *Backend) Close() error { return nil }

type item struct {
	n       int64
	expires time.Time
}

type ephemeral struct {
	now func() time.Time

	mu     sync.Mutex
	items  map[string]item
	writes int
}

// live returns key's item if it has not expired; the caller holds mu.
func (e *ephemeral) live(key string, now time.Time) (item, bool) {
	it, ok := e.items[key]
	if ok && !now.Before(it.expires) {
		delete(e.items, key)
		return item{}, false
	}
	return it, ok
}

// sweep drops expired items every so many writes, so keys nobody reads again do
// not pile up; the caller holds mu.
func (e *ephemeral) sweep(now time.Time) {
	e.writes++
	if e.writes < 1024 || e.writes < len(e.items) {
		return
	}
	e.writes = 0
	for k, it := range e.items {
		if !now.Before(it.expires) {
			delete(e.items, k)
		}
	}
}

func (e *ephemeral) Claim(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.live(key, now); ok {
		return false, nil
	}
	e.sweep(now)
	e.items[key] = item{n: 1, expires: now.Add(ttl)}
	return true, nil
}

func (e *ephemeral) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	it, ok := e.live(key, now)
	if !ok {
		e.sweep(now)
		it = item{expires: now.Add(ttl)}
	}
	it.n++
	e.items[key] = it
	return it.n, nil
}

func (e *ephemeral) Count(_ context.Context, key string) (int64, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	it, _ := e.live(key, now)
	return it.n, nil
}

func (e *ephemeral) Counts(_ context.Context, keys ...string) ([]int64, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int64, len(keys))
	for i, k := range keys {
		it, _ := e.live(k, now)
		out[i] = it.n
	}
	return out, nil
}

func (e *ephemeral) Release(_ context.Context, key string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, key)
	return nil
}
