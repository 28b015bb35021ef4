package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

const (
	workers = 64
	// notifiers send the NOTIFYs a state change or an expiry brings, off the
	// NATS callbacks and the sweep: each may wait 32 s on an unanswering
	// subscriber. queued bounds what waits for them.
	notifiers = 32
	queued    = 4096
	// fanOut bounds the NOTIFYs one state change has in flight.
	fanOut = 32
	// sweepEvery is how often a replica looks for expired subscriptions.
	sweepEvery = 250 * time.Millisecond
	// storeTimeout bounds one store or NOTIFY round.
	storeTimeout = 10 * time.Second
	// A dialog's NOTIFY lease: held at most as long as a NOTIFY round,
	// waited for at most leaseWait, polled every leaseRetry.
	leaseTTL   = storeTimeout
	leaseWait  = 2 * time.Second
	leaseRetry = 10 * time.Millisecond
)

func init() {
	role.Register(wire.RoleEvents, func() role.Role { return &Events{} })
}

// Events is one replica of the role.
type Events struct {
	cfg        Config
	userAgent  string
	subs       store.Subscriptions
	eph        store.Ephemeral
	pubs       store.Publications
	loc        store.Location
	ids        *ids.Generator
	log        *slog.Logger
	metrics    *obs.Metrics
	clock      clockwork.Clock
	send       notifier
	replica    string
	publishMsg func(*nats.Msg) error

	svc      *sipbus.Service
	bindings *nats.Subscription
	calls    *nats.Subscription
	stop     chan struct{}
	wg       sync.WaitGroup
	jobs     chan func()
	jobsWG   sync.WaitGroup
	// dialogs hold a replica's NOTIFYs of one dialog to one at a time, so
	// their CSeqs reach the subscriber in order (RFC 3261 §12.2.2 answers a
	// lower one 500).
	dialogs keyedMutex
}

// keyedMutex is a mutex per key, dropped when no one holds or waits for it.
type keyedMutex struct {
	mu   sync.Mutex
	held map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*refMutex{}
	}
	m := k.held[key]
	if m == nil {
		m = &refMutex{}
		k.held[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}

// notifier is how NOTIFYs leave: uac.Client through the edges; tests fake it.
type notifier interface {
	Do(ctx context.Context, req *sip.Request, via uac.Via, onProvisional func(uac.Response)) (uac.Response, error)
}

// Name implements role.Role.
func (e *Events) Name() string { return wire.RoleEvents }

// Config implements role.Role.
func (e *Events) Config() role.Config { return &e.cfg }

// Start implements role.Role: it serves SUBSCRIBE and NOTIFY, follows the
// registrar's binding events (presence, reg) and the uas's call events
// (dialog), and sweeps expired subscriptions.
func (e *Events) Start(ctx context.Context, d role.Deps) error {
	e.eph = d.Store.Ephemeral()
	e.userAgent, e.subs, e.pubs, e.loc, e.metrics, e.clock = d.UserAgent, d.Store.Subscriptions(), d.Store.Publications(), d.Store.Location(), d.Metrics, d.Clock
	e.ids, e.log = d.IDs(wire.RoleEvents), d.Log.With("role", wire.RoleEvents)
	e.replica, e.publishMsg = e.ids.Tag(), d.NATS.PublishMsg
	client, err := uac.New(d.NATS)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	e.send = client
	e.jobs, e.stop = make(chan func(), queued), make(chan struct{})
	for range notifiers {
		e.jobsWG.Add(1)
		go func() {
			defer e.jobsWG.Done()
			for {
				select {
				case job := <-e.jobs:
					job()
				case <-e.stop:
					return
				}
			}
		}()
	}
	// One replica per binding event (a queue group): each watcher gets one NOTIFY.
	e.bindings, err = d.NATS.QueueSubscribe(wire.EventSource(wire.RoleRegistrar), wire.RoleEvents, e.bindingChanged)
	if err != nil {
		return fmt.Errorf("events: follow bindings: %w", err)
	}
	e.calls, err = d.NATS.QueueSubscribe(wire.EventSource(wire.RoleUAS), wire.RoleEvents, e.callChanged)
	if err != nil {
		return fmt.Errorf("events: follow calls: %w", err)
	}
	guard := &auth.Guard{Clock: e.clock, IDs: e.ids, Agent: "siphon-events", Log: e.log}
	if d.Auth.Auth {
		if guard.Auth, err = auth.New(ctx, d.Auth, d.Store); err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
	e.svc, err = sipbus.Serve(d.NATS, wire.RoleEvents, guard.Wrap(map[string]sipbus.Handler{
		"SUBSCRIBE": e.subscribe,
		"PUBLISH":   e.publish,
		"NOTIFY":    e.notifyReceived,
	}), sipbus.Options{Workers: workers}, e.metrics, e.log)
	if err != nil {
		return err
	}
	e.wg.Add(1)
	go e.sweep()
	return nil
}

// Stop implements role.Role.
func (e *Events) Stop(ctx context.Context) error {
	if e.svc == nil {
		return nil
	}
	close(e.stop)
	_ = e.bindings.Unsubscribe()
	_ = e.calls.Unsubscribe()
	err := e.svc.Stop(ctx)
	e.wg.Wait()
	e.jobsWG.Wait()
	return err
}

// enqueue hands job to the notifiers; when the role is stopping it is dropped.
func (e *Events) enqueue(job func()) {
	select {
	case e.jobs <- job:
	case <-e.stop:
	}
}

// bindingChanged notifies the presence and reg watchers of an
// address-of-record whose bindings changed.
func (e *Events) bindingChanged(m *nats.Msg) {
	var ev wire.BindingEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return
	}
	e.enqueue(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		e.notifyWatchers(ctx, presence, ev.Binding.AOR)
		e.notifyWatchers(ctx, reg, ev.Binding.AOR)
	})
}

// sweep ends expired subscriptions: the store hands each to one replica,
// which sends its terminated NOTIFY (RFC 6665 §4.2.2: reason=timeout). It
// lapses expired publications the same way.
func (e *Events) sweep() {
	defer e.wg.Done()
	t := e.clock.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.Chan():
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			expired, err := e.subs.Expired(ctx, e.clock.Now(), 100)
			if err != nil {
				e.log.Warn("expired subscriptions", "error", err)
			}
			e.lapse(ctx)
			cancel()
			for _, s := range expired {
				e.enqueue(func() {
					ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
					defer cancel()
					e.terminate(ctx, s, "timeout")
				})
			}
		}
	}
}

// announce publishes ev; a failure is logged, never fatal.
func (e *Events) announce(ev wire.StateEvent) {
	ev.Replica, ev.At = e.replica, e.clock.Now()
	data, err := json.Marshal(ev)
	if err == nil {
		err = e.publishMsg(&nats.Msg{Subject: wire.Event(wire.RoleEvents, ev.Event), Data: data})
	}
	if err != nil {
		e.log.Warn("event not published", "event", ev.Event, "error", err)
	}
}

// reply answers r with a response of the role's own making.
func (e *Events) reply(r *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", e.userAgent))
	if err := r.Respond(res); err != nil {
		e.log.Warn("respond failed", "error", err)
	}
}

func (e *Events) refuse(r *sipbus.Request, code int, reason, detail string, hdrs ...sip.Header) {
	e.reply(r, sipmsg.Refusal(r.Request, code, reason, "siphon-events", detail, e.ids, hdrs...))
}
