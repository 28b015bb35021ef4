// Package registrar is the location service of RFC 3261 §10: REGISTER with
// digest authentication, bindings shared by every replica through the store,
// and an event on the bus for every change.
package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// workers is how many REGISTERs a replica handles at once: each waits on the
// store, so enough to keep Redis busy across round trips.
const workers = 256

// sweepEvery is how often a replica looks for expired bindings to announce.
const sweepEvery = 500 * time.Millisecond

func init() {
	role.Register(wire.RoleRegistrar, func() role.Role { return &Registrar{} })
}

// Registrar is one replica of the role.
type Registrar struct {
	cfg       Config
	userAgent string
	loc       store.Location
	backend   store.Backend
	authCfg   auth.Config
	auth      *auth.Authenticator
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	clock     clockwork.Clock
	// publish sends an event; nil drops events (handler tests).
	publish func(subject string, data []byte) error

	svc  *sipbus.Service
	stop chan struct{}
	wg   sync.WaitGroup
}

// Name implements role.Role.
func (r *Registrar) Name() string { return wire.RoleRegistrar }

// Config implements role.Role.
func (r *Registrar) Config() role.Config { return &r.cfg }

// use takes the dependencies the handlers need; Start calls it, handler tests too.
func (r *Registrar) use(d role.Deps) {
	r.userAgent, r.backend, r.loc, r.metrics, r.clock = d.UserAgent, d.Store, d.Store.Location(), d.Metrics, d.Clock
	r.ids, r.log = d.IDs(wire.RoleRegistrar), d.Log.With("role", wire.RoleRegistrar)
	r.authCfg = d.Auth
}

func (r *Registrar) now() time.Time { return r.clock.Now() }

// prepare loads the shared nonce secret, so every replica signs alike.
func (r *Registrar) prepare(ctx context.Context) error {
	if !r.authCfg.Auth {
		return nil
	}
	a, err := auth.New(ctx, r.authCfg, r.backend)
	if err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	r.auth = a
	return nil
}

// Handlers maps REGISTER to its handler.
func (r *Registrar) Handlers() map[string]sipbus.Handler {
	return map[string]sipbus.Handler{"REGISTER": r.register}
}

// Start implements role.Role: it joins the bus and starts announcing expiries.
func (r *Registrar) Start(ctx context.Context, d role.Deps) error {
	r.use(d)
	if err := r.prepare(ctx); err != nil {
		return err
	}
	r.publish = d.NATS.Publish
	svc, err := sipbus.Serve(d.NATS, wire.RoleRegistrar, r.Handlers(), sipbus.Options{Workers: workers}, r.metrics, r.log)
	if err != nil {
		return err
	}
	r.svc = svc
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go r.sweep()
	return nil
}

// Stop implements role.Role: it leaves the bus and lets the REGISTERs taken finish.
func (r *Registrar) Stop(ctx context.Context) error {
	if r.svc == nil {
		return nil
	}
	close(r.stop)
	r.wg.Wait()
	return r.svc.Stop(ctx)
}

// sweep announces bindings that expired. Every replica sweeps; the store hands
// each expired binding to one of them.
func (r *Registrar) sweep() {
	defer r.wg.Done()
	t := r.clock.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.Chan():
			r.expireDue()
		}
	}
}

// expireDue announces the bindings whose time has passed.
func (r *Registrar) expireDue() {
	expired, err := r.loc.Expire(context.Background(), r.now(), 1000)
	if err != nil {
		r.log.Warn("expiry sweep failed", "error", err)
	}
	r.announce(wire.EventBindingExpired, expired)
}

func (r *Registrar) announce(name string, bs []store.Binding) {
	if r.publish == nil || len(bs) == 0 {
		return
	}
	subject := wire.Event(mode.RoleRegistrar, name)
	for _, b := range bs {
		data := wire.BindingEvent{Event: name, Binding: b, At: r.now()}.AppendJSON(make([]byte, 0, 512))
		if err := r.publish(subject, data); err != nil {
			r.log.Warn("event not published", "event", name, "error", err)
		}
	}
}

// respond sends res with the Server header; a failure is logged once, here.
func (r *Registrar) respond(req *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", r.userAgent))
	if err := req.Respond(res); err != nil {
		r.log.Warn("respond failed", "error", err)
	}
}
