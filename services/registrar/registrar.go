// Package registrar is the location service of RFC 3261 §10: REGISTER with
// digest authentication, bindings shared by every replica through the store,
// and an event on the bus for every change.
package registrar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// workers is how many REGISTERs a replica handles at once: each waits on the
// store, so enough to keep Redis busy across round trips.
const workers = 256

// sweepEvery is how often a replica looks for expired bindings to announce.
const sweepEvery = 500 * time.Millisecond

// Registrar is one replica of the role.
type Registrar struct {
	cfg       Config
	userAgent string
	loc       store.Location
	backend   store.Backend
	auth      *authenticator
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	now       func() time.Time
	// publish sends an event; nil drops events (handler tests).
	publish func(subject string, data []byte) error

	svc  *sipbus.Service
	stop chan struct{}
	wg   sync.WaitGroup
}

// New makes the role. cfg must have passed Validate.
func New(cfg Config, backend store.Backend, userAgent string, m *obs.Metrics, log *slog.Logger) *Registrar {
	return &Registrar{
		cfg: cfg, userAgent: userAgent, loc: backend.Location(), backend: backend, metrics: m,
		ids: ids.FromEnv(mode.RoleRegistrar), log: log.With("role", mode.RoleRegistrar), now: time.Now,
	}
}

// prepare loads the shared nonce secret, so every replica signs alike.
func (r *Registrar) prepare(ctx context.Context) error {
	if !r.cfg.Auth {
		return nil
	}
	secret, err := r.backend.Secrets().Secret(ctx, "digest-nonce", 32)
	if err != nil {
		return fmt.Errorf("registrar: nonce secret: %w", err)
	}
	dummy := make([]byte, 16)
	_, _ = rand.Read(dummy)
	r.auth = &authenticator{
		realm: r.cfg.Realm, algorithms: r.cfg.AlgorithmList(), users: r.cfg.Users,
		nonceTTL: r.cfg.NonceTTL, maxFailures: int64(r.cfg.MaxFailures), lockout: r.cfg.Lockout,
		secret: secret, eph: r.backend.Ephemeral(), dummy: hex.EncodeToString(dummy),
	}
	return nil
}

// Handlers maps REGISTER to its handler.
func (r *Registrar) Handlers() map[string]sipbus.Handler {
	return map[string]sipbus.Handler{"REGISTER": r.register}
}

// Start joins the bus and starts announcing expiries.
func (r *Registrar) Start(ctx context.Context, nc *nats.Conn) error {
	if err := r.prepare(ctx); err != nil {
		return err
	}
	r.publish = nc.Publish
	svc, err := sipbus.Serve(nc, mode.RoleRegistrar, r.Handlers(), sipbus.Options{Workers: workers}, r.metrics, r.log)
	if err != nil {
		return err
	}
	r.svc = svc
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go r.sweep()
	return nil
}

// Stop leaves the bus.
func (r *Registrar) Stop() error {
	if r.svc == nil {
		return nil
	}
	close(r.stop)
	r.wg.Wait()
	return r.svc.Stop()
}

// sweep announces bindings that expired. Every replica sweeps; the store hands
// each expired binding to one of them.
func (r *Registrar) sweep() {
	defer r.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			expired, err := r.loc.Expire(context.Background(), r.now(), 1000)
			if err != nil {
				r.log.Warn("expiry sweep failed", "error", err)
			}
			r.announce(EventExpired, expired)
		}
	}
}

// Events the registrar publishes on siphon.v1.event.registrar.<name>.
const (
	EventAdded     = "binding.added"
	EventRefreshed = "binding.refreshed"
	EventRemoved   = "binding.removed"
	EventExpired   = "binding.expired"
)

// Event is the JSON payload of a binding event.
type Event struct {
	Event   string        `json:"event"`
	Binding store.Binding `json:"binding"`
	At      time.Time     `json:"at"`
}

func (r *Registrar) announce(name string, bs []store.Binding) {
	if r.publish == nil || len(bs) == 0 {
		return
	}
	subject := wire.Event(mode.RoleRegistrar, name)
	for _, b := range bs {
		data, err := json.Marshal(Event{Event: name, Binding: b, At: r.now()})
		if err == nil {
			err = r.publish(subject, data)
		}
		if err != nil {
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
