// Package uas is the user agent server role: it answers the requests a mode sends
// to it (OPTIONS in every mode; calls in full-uas and call-server). Dialogs live
// in the store, so any replica serves any request inside any dialog; only an
// INVITE that is still ringing belongs to the replica that took it, and the
// edge and other replicas reach that one by its replica subject.
package uas

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// workers: handlers wait on the store (Redis), so they run on a pool.
const workers = 256

// storeTimeout bounds one handler's store work.
const storeTimeout = 5 * time.Second

// sweepEvery is how often each replica looks for dialogs that are due.
const sweepEvery = 250 * time.Millisecond

func init() {
	role.Register(wire.RoleUAS, func() role.Role { return &UAS{} })
}

// UAS is one replica of the role. It serves the mode each request's edge
// announces (Siphon-Mode), so one set of uas replicas behind edges of any mode
// behaves as that mode; its own --mode applies when an edge does not say.
type UAS struct {
	cfg       Config
	mode      mode.Mode
	allow     map[string]string // mode name → Allow
	userAgent string
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	caps      Capabilities
	// supportedTags are the option tags this configuration implements;
	// supported is them as a Supported header value.
	supportedTags []string
	supported     string
	dialogs       store.Dialogs
	clock         clockwork.Clock

	replica     string // this replica's id, on every response as Siphon-Replica
	enableRefer bool   // --enable-refer (role.Deps: the b2bua reads it too)
	send        sender
	// publish sends a message on the bus (events, a PRACK to another
	// replica); nil drops them (handler tests).
	publish func(*nats.Msg) error
	nc      *nats.Conn
	svc     *sipbus.Service
	sub     *nats.Subscription
	ringing sync.Map // Siphon-Tx → *call: INVITEs this replica holds
	pracks  sync.Map // dialog id → *call: the same calls, for PRACK
	stop    chan struct{}
	wg      sync.WaitGroup
}

// sender is the send path as the uas uses it (uac.Client; a fake in tests).
type sender interface {
	Do(ctx context.Context, req *sip.Request, via uac.Via, onProvisional func(uac.Response)) (uac.Response, error)
	Invite(ctx context.Context, req *sip.Request, via uac.Via, ack func(*sip.Response) (*sip.Request, error), onProvisional func(uac.Response)) (uac.Response, error)
	Stateless(ctx context.Context, msg sip.Message, via uac.Via) error
}

// Name implements role.Role.
func (u *UAS) Name() string { return wire.RoleUAS }

// Config implements role.Role.
func (u *UAS) Config() role.Config { return &u.cfg }

// use takes what the handlers need from d; Start calls it, handler tests too.
func (u *UAS) use(d role.Deps) error {
	caps, err := LoadCapabilities(u.cfg.SDPProfile)
	if err != nil {
		return fmt.Errorf("uas: %w", err)
	}
	u.allow = map[string]string{}
	for _, name := range mode.Names() {
		m, _ := mode.Lookup(name)
		u.allow[name] = m.Allow()
	}
	u.mode, u.userAgent, u.metrics, u.caps, u.clock = d.Mode, d.UserAgent, d.Metrics, caps, d.Clock
	u.enableRefer = d.EnableRefer
	u.supportedTags = supportedTags(u.cfg)
	u.supported = strings.Join(u.supportedTags, ", ")
	u.dialogs, u.ids = d.Store.Dialogs(), d.IDs(wire.RoleUAS)
	u.replica = u.ids.Tag()
	u.log = d.Log.With("role", wire.RoleUAS)
	return nil
}

func (u *UAS) now() time.Time { return u.clock.Now() }

// allowFor is the Allow header of the mode r's edge runs.
func (u *UAS) allowFor(r *sipbus.Request) string {
	if a, ok := u.allow[r.Mode]; ok {
		return a
	}
	return u.mode.Allow()
}

// Handlers maps each method the role serves to its handler (the edge only sends
// what its mode routes here). CANCEL is not among them: the edge answers it and
// passes it to the replica holding the INVITE (fromReplicaSubject).
func (u *UAS) Handlers() map[string]sipbus.Handler {
	return map[string]sipbus.Handler{
		"OPTIONS": u.options,
		"INVITE":  u.invite,
		"ACK":     u.ack,
		"BYE":     u.bye,
		"PRACK":   u.prack,
		"UPDATE":  u.update,
		"INFO":    u.info,
		"MESSAGE": u.message,
		"REFER":   u.refer,
	}
}

// Start implements role.Role: it joins the bus (the role's queue group, this
// replica's own subject) and starts the sweep that acts on due dialogs.
func (u *UAS) Start(ctx context.Context, d role.Deps) error {
	if err := u.use(d); err != nil {
		return err
	}
	if u.cfg.EnableSessionTimers && u.cfg.MinSE < 90 {
		u.log.Warn("--min-se is below RFC 4028's 90 seconds: fine for tests, not for interop", "min_se", u.cfg.MinSE)
	}
	u.nc, u.publish = d.NATS, d.NATS.PublishMsg
	client, err := uac.New(d.NATS)
	if err != nil {
		return fmt.Errorf("uas: %w", err)
	}
	u.send = client
	u.sub, err = d.NATS.Subscribe(wire.Replica(wire.RoleUAS, u.replica), u.fromReplicaSubject)
	if err != nil {
		return fmt.Errorf("uas: subscribe replica subject: %w", err)
	}
	guard := &auth.Guard{Clock: u.clock, IDs: u.ids, Agent: "siphon-uas", Log: u.log}
	if d.Auth.Auth {
		if guard.Auth, err = auth.New(ctx, d.Auth, d.Store); err != nil {
			return fmt.Errorf("uas: %w", err)
		}
	}
	svc, err := sipbus.Serve(d.NATS, wire.RoleUAS, guard.Wrap(u.Handlers()), sipbus.Options{Workers: workers, Replica: u.replica}, u.metrics, u.log)
	if err != nil {
		return err
	}
	u.svc = svc
	u.stop = make(chan struct{})
	u.wg.Add(1)
	go u.sweep()
	return nil
}

// Stop implements role.Role: the replica leaves the bus once the requests it
// took are answered.
func (u *UAS) Stop(ctx context.Context) error {
	if u.svc == nil {
		return nil
	}
	close(u.stop)
	u.wg.Wait()
	_ = u.sub.Unsubscribe()
	return u.svc.Stop(ctx)
}

// respond sends res and logs a failure once, here at the top of the role.
func (u *UAS) respond(r *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", u.userAgent))
	if err := r.Respond(res); err != nil {
		u.log.Warn("respond failed", "error", err)
	}
}

// reply answers r with a response of its own making; detail, when set, goes in
// a Warning so the sender learns exactly what was wrong.
func (u *UAS) reply(r *sipbus.Request, code int, reason, detail string, hdrs ...sip.Header) {
	u.respond(r, sipmsg.Refusal(r.Request, code, reason, "siphon-uas", detail, u.ids, hdrs...))
}

func (u *UAS) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// announce publishes ev; a failure is logged, never fatal to the call.
func (u *UAS) announce(ev wire.CallEvent) {
	if u.publish == nil {
		return // not on a bus: handler tests
	}
	ev.Replica, ev.At = u.replica, u.now()
	data, err := json.Marshal(ev)
	if err == nil {
		err = u.publish(&nats.Msg{Subject: wire.Event(wire.RoleUAS, ev.Event), Data: data})
	}
	if err != nil {
		u.log.Warn("event not published", "event", ev.Event, "error", err)
	}
}

// dialogEvent is an event about d.
func dialogEvent(name string, d *store.Dialog) wire.CallEvent {
	return wire.CallEvent{Event: name, CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, From: d.RemoteURI, To: d.LocalURI}
}
