// Package ids makes the Call-IDs, tags and branches siphon puts in SIP messages.
//
// With SIPHON_ID_SEED set, a generator draws from a ChaCha8 stream keyed by the seed
// and a stream name, so the same seed and the same input give the same IDs run after
// run (stable snapshots in tests). Without it, IDs come from the runtime's random
// source, which is seeded from the OS and safe for concurrent use.
package ids

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"sync"
)

// SeedEnv is the environment variable that makes IDs reproducible.
const SeedEnv = "SIPHON_ID_SEED"

// BranchCookie starts every RFC 3261 branch (§8.1.1.7).
const BranchCookie = "z9hG4bK"

// Generator makes IDs. The zero value is not usable; use New or FromEnv.
type Generator struct {
	mu  sync.Mutex
	rng *rand.ChaCha8 // nil: use the runtime's random source
}

// New returns a generator. An empty seed gives random IDs; otherwise the IDs are
// a function of (seed, stream, call order). Give each role its own stream so two
// roles in one process do not share a sequence.
func New(seed, stream string) *Generator {
	if seed == "" {
		return &Generator{}
	}
	key := sha256.Sum256([]byte(seed + "\x00" + stream))
	return &Generator{rng: rand.NewChaCha8(key)}
}

// FromEnv returns a generator seeded by SIPHON_ID_SEED, if set.
func FromEnv(stream string) *Generator {
	return New(os.Getenv(SeedEnv), stream)
}

// Seeded reports whether IDs are reproducible.
func (g *Generator) Seeded() bool { return g.rng != nil }

func (g *Generator) uint64() uint64 {
	if g.rng == nil {
		return rand.Uint64()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rng.Uint64()
}

// hex128 is 32 hex digits of fresh randomness.
func (g *Generator) hex128() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], g.uint64())
	binary.BigEndian.PutUint64(b[8:], g.uint64())
	return hex.EncodeToString(b[:])
}

// Branch is a Via branch with the RFC 3261 magic cookie.
func (g *Generator) Branch() string { return BranchCookie + g.hex128()[:20] }

// Tag is a From/To tag.
func (g *Generator) Tag() string { return g.hex128()[:16] }

// ETag is an entity-tag for published event state (RFC 3903 SIP-ETag).
func (g *Generator) ETag() string { return g.hex128() }

// CallID is a Call-ID; host, when not empty, is appended as "@host".
func (g *Generator) CallID(host string) string {
	id := g.hex128()
	if host == "" {
		return id
	}
	return id + "@" + host
}
