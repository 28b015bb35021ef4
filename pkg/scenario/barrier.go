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
	// Parties is how many actors meet there.
	Parties int    `json:"parties"`
	Actor   string `json:"actor"`
}

func (m Meeting) key() string { return m.Barrier + "#" + strconv.Itoa(m.Call) }

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

// gathering is a barrier some parties have come to.
type gathering struct {
	came int
	all  chan struct{} // closed when every party has come
}

// Wait implements Barriers.
func (b *LocalBarriers) Wait(ctx context.Context, m Meeting, within time.Duration) error {
	g := b.arrive(m)
	select {
	case <-g.all:
		return nil
	case <-b.Clock.After(within):
		b.mu.Lock()
		came := g.came
		b.mu.Unlock()
		return fmt.Errorf("barrier %s: %d of %d actors came within %v", m.Barrier, came, m.Parties, within)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// arrive counts m's actor in at its barrier.
func (b *LocalBarriers) arrive(m Meeting) *gathering {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at == nil {
		b.at = map[string]*gathering{}
	}
	g := b.at[m.key()]
	if g == nil {
		g = &gathering{all: make(chan struct{})}
		b.at[m.key()] = g
	}
	g.came++
	if g.came == m.Parties {
		close(g.all)
		delete(b.at, m.key())
	}
	return g
}
