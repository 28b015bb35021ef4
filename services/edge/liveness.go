package edge

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// Which role replicas are still there. An INVITE branch rings for minutes on
// behalf of the replica that asked for it; if that replica dies, nobody would
// ever CANCEL it. An INVITE the edge relays to a role rings on the replica
// holding it; if that one dies, the caller would ring until Timer C. So while
// a replica has INVITEs in flight here, the edge sends a probe (a NATS request
// with wire.HdrProbe) every --sender-check to the subject its responses go to
// (an asker), or to its replica subject (a holder). NATS answers at once with no responders when
// the replica's connection is gone (a killed process's socket closes with
// it); a replica that is there answers the probe. No responders, or
// missesAllowed probes in a row unanswered (a replica cut off without its
// connection closing), and the replica is gone: a gone asker's branches are
// CANCELled, a gone holder's callers answered 500.
// The bound: --sender-check after the replica's NATS connection closes, or
// (missesAllowed+1)·--sender-check after it stops answering.

// missesAllowed is how many probes in a row may go unanswered before a replica
// counts as gone.
const missesAllowed = 2

// prober watches askers: one probe per asker inbox, however many branches.
type prober struct {
	nc       *nats.Conn
	clock    clockwork.Clock
	interval time.Duration
	log      *slog.Logger

	mu     sync.Mutex
	askers map[string]*asker // inbox (reply subject less its last token) → asker
	stop   chan struct{}
	once   sync.Once
}

// asker is one replica with branches in flight.
type asker struct {
	subject string         // a reply subject of it: where probes go
	gone    map[any]func() // what to do for each piece of work when it is gone
	ticker  clockwork.Ticker
	misses  int
}

func newProber(nc *nats.Conn, clock clockwork.Clock, interval time.Duration, log *slog.Logger) *prober {
	return &prober{nc: nc, clock: clock, interval: interval, log: log, askers: map[string]*asker{}, stop: make(chan struct{})}
}

// inbox is the asker part of a reply subject: its replies all share it (a
// bus.Streamer answers probes on any subject under it).
func inbox(reply string) string {
	if i := strings.LastIndexByte(reply, '.'); i > 0 {
		return reply[:i]
	}
	return reply
}

// watch calls onGone for work if the replica key names goes: probes go to
// subject. unwatch stops that.
func (p *prober) watch(key, subject string, work any, onGone func()) (unwatch func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.askers[key]
	if a == nil {
		a = &asker{subject: subject, gone: map[any]func(){}, ticker: p.clock.NewTicker(p.interval)}
		p.askers[key] = a
		go p.run(key, a)
	}
	a.gone[work] = onGone
	return func() {
		p.mu.Lock()
		delete(a.gone, work)
		p.mu.Unlock()
	}
}

func (p *prober) run(key string, a *asker) {
	for {
		select {
		case <-p.stop:
			return
		case <-a.ticker.Chan():
		}
		p.mu.Lock()
		if len(a.gone) == 0 {
			// Idle for a whole interval: stop probing. Kept that long, one
			// entry serves a replica whose calls come and go many a second.
			delete(p.askers, key)
			a.ticker.Stop()
			p.mu.Unlock()
			return
		}
		subject := a.subject
		p.mu.Unlock()
		if !p.probe(subject, a) {
			continue
		}
		p.mu.Lock()
		delete(p.askers, key)
		a.ticker.Stop()
		callbacks := make([]func(), 0, len(a.gone))
		for _, f := range a.gone {
			callbacks = append(callbacks, f)
		}
		a.gone = map[any]func(){}
		p.mu.Unlock()
		p.log.Warn("a role replica with INVITEs in flight here is gone", "replica", key, "invites", len(callbacks))
		for _, f := range callbacks {
			f()
		}
		return
	}
}

// probe reports whether the asker is gone.
func (p *prober) probe(subject string, a *asker) bool {
	if !p.nc.IsConnected() {
		// The edge's own connection is down: a probe would say nothing of
		// the replica, and the edge must not take them all for gone.
		a.misses = 0
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.interval)
	defer cancel()
	_, err := p.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Header: nats.Header{wire.HdrProbe: {"1"}}})
	switch {
	case err == nil:
		a.misses = 0
		return false
	case errors.Is(err, nats.ErrNoResponders):
		return true
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		a.misses++
		return a.misses > missesAllowed
	default:
		return false // our own connection's trouble says nothing of the asker
	}
}

func (p *prober) close() {
	p.once.Do(func() { close(p.stop) })
}
