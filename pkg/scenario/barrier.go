package scenario

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Meeting is one actor at one barrier in one call (the call numbers of
// actors that meet are the same).
type Meeting struct {
	Barrier string `json:"barrier"`
	Call    int    `json:"call"`
	// Round is the how many-th time the actor comes to this barrier in the
	// call (a barrier in a repeat): each round is a meeting of its own.
	Round int `json:"round"`
	// Parties is how many actors meet there.
	Parties int    `json:"parties"`
	Actor   string `json:"actor"`
	// Within is how long the actor waits there.
	Within time.Duration `json:"within"`
}

func (m Meeting) key() string {
	return m.Barrier + "#" + strconv.Itoa(m.Call) + "#" + strconv.Itoa(m.Round)
}

// Barriers is where actors meet: Wait returns once every party of m has
// come, or fails after within.
type Barriers interface {
	Wait(ctx context.Context, m Meeting, within time.Duration) error
}

// LocalBarriers are the barriers of actors that run in one process.
type LocalBarriers struct {
	Clock clockwork.Clock
	mu    sync.Mutex
	at    map[string]*gathering
}

// gathering is a barrier some parties are waiting at.
type gathering struct {
	there map[string]bool // the actors waiting
	all   chan struct{}   // closed when every party has come
}

// Wait implements Barriers.
func (b *LocalBarriers) Wait(ctx context.Context, m Meeting, within time.Duration) error {
	g := b.arrive(m)
	select {
	case <-g.all:
		return nil
	case <-b.Clock.After(within):
	case <-ctx.Done():
	}
	// One who gave up is not there for those who come later.
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-g.all:
		return nil // everyone came just as it gave up
	default:
	}
	came := len(g.there)
	delete(g.there, m.Actor)
	if len(g.there) == 0 {
		delete(b.at, m.key())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("barrier %s: %d of %d actors came within %v", m.Barrier, came, m.Parties, within)
}

// arrive puts m's actor at its barrier.
func (b *LocalBarriers) arrive(m Meeting) *gathering {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at == nil {
		b.at = map[string]*gathering{}
	}
	g := b.at[m.key()]
	if g == nil {
		g = &gathering{there: map[string]bool{}, all: make(chan struct{})}
		b.at[m.key()] = g
	}
	g.there[m.Actor] = true
	if len(g.there) == m.Parties {
		close(g.all)
		delete(b.at, m.key())
	}
	return g
}
