// Package roletest gives handler tests the dependencies a role starts with:
// memory state, a fake clock, discarded logs, no bus.
package roletest

import (
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/store/memstore"
)

// Start is the fake clock's first reading: a fixed instant, so tests read alike.
var Start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// Deps are dependencies for mode modeName on a fake clock: the store expires
// by that clock too. NATS is nil: handlers under test answer a recorder.
func Deps(modeName string) (role.Deps, *clockwork.FakeClock) {
	md, err := mode.Lookup(modeName)
	if err != nil {
		panic(err)
	}
	clock := clockwork.NewFakeClockAt(Start)
	return role.Deps{
		Mode:        md,
		Store:       memstore.New(clock.Now),
		Log:         slog.New(slog.DiscardHandler),
		Metrics:     obs.NewMetrics(),
		Health:      obs.NewHealth(),
		IDs:         func(stream string) *ids.Generator { return ids.New("roletest", stream) },
		Clock:       clock,
		UserAgent:   "siphond/test",
		EnableRefer: true,
	}, clock
}
