// Package store holds the state interfaces roles share across replicas. Each has
// two implementations that pass one conformance suite (storetest): memstore, the
// embedded default, and redisstore for labs. Later roles add their stores here in
// the same pattern.
package store

import (
	"context"
	"time"
)

// Ephemeral holds small keyed facts that expire by themselves: the building block
// for nonce-count replay protection (Claim), failure lock-outs and rate limits
// (Incr), and request idempotency across replicas (Claim on a transaction key).
// Keys are opaque strings chosen by the caller.
type Ephemeral interface {
	// Claim takes key for ttl if nobody holds it. It reports whether this call
	// took it; an expired claim can be taken again.
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Incr adds one to the counter at key and returns the new value. The first
	// increment starts a window of ttl; when it ends the counter is gone.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Count returns the counter at key, 0 when absent or expired.
	Count(ctx context.Context, key string) (int64, error)
	// Counts is Count for several keys in one trip to the store.
	Counts(ctx context.Context, keys ...string) ([]int64, error)
	// Release drops key, whether a claim or a counter.
	Release(ctx context.Context, key string) error
}

// Secrets holds values every replica must share, such as the key that signs
// digest nonces: the first replica to ask creates it.
type Secrets interface {
	// Secret returns the secret named name, creating size random bytes if absent.
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}

// Backend is one place state lives, and everything it stores.
type Backend interface {
	Ephemeral() Ephemeral
	Location() Location
	Secrets() Secrets
	Dialogs() Dialogs
	Subscriptions() Subscriptions
	Publications() Publications
	Bridges() Bridges
	// Ping checks the backend answers; /readyz calls it.
	Ping(ctx context.Context) error
	Close() error
}
