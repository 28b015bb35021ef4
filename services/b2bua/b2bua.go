package b2bua

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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

const (
	workers = 64
	// storeTimeout bounds one store round or one relayed transaction.
	storeTimeout = 10 * time.Second
	// sweepEvery is how often a replica looks for calls due (--max-call-duration).
	sweepEvery = 250 * time.Millisecond
	// forgetAfter is how long a call's record outlives its last request
	// when nobody hangs up (a party that vanished); every request in the
	// call renews it.
	forgetAfter = 12 * time.Hour
)

func init() {
	role.Register(wire.RoleB2BUA, func() role.Role { return &B2BUA{} })
}

// B2BUA is one replica of the role.
type B2BUA struct {
	cfg       Config
	userAgent string
	bridges   store.Bridges
	loc       store.Location
	ids       *ids.Generator
	log       *slog.Logger
	clock     clockwork.Clock
	send      *uac.Client
	replica   string
	publish   func(*nats.Msg) error
	// enableRefer is --enable-refer (shared with the uas).
	enableRefer bool

	calls   *prometheus.CounterVec
	active  sync.Map // bridge id → struct{}: calls this replica set up, for the gauge
	svc     *sipbus.Service
	sub     *nats.Subscription
	ringing sync.Map // Siphon-Tx → *call: caller INVITEs this replica holds
	pracks  sync.Map // bridge id → *call: the same calls, for the caller's PRACKs
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Name implements role.Role.
func (b *B2BUA) Name() string { return wire.RoleB2BUA }

// Config implements role.Role.
func (b *B2BUA) Config() role.Config { return &b.cfg }

// Start implements role.Role: it joins the bus (the role's queue group, this
// replica's own subject for the CANCELs of INVITEs it holds) and sweeps the
// calls that reach --max-call-duration.
func (b *B2BUA) Start(_ context.Context, d role.Deps) error {
	b.userAgent, b.bridges, b.loc, b.clock = d.UserAgent, d.Store.Bridges(), d.Store.Location(), d.Clock
	b.ids, b.log = d.IDs(wire.RoleB2BUA), d.Log.With("role", wire.RoleB2BUA)
	b.replica, b.publish, b.enableRefer = b.ids.Tag(), d.NATS.PublishMsg, d.EnableRefer
	client, err := uac.New(d.NATS)
	if err != nil {
		return fmt.Errorf("b2bua: %w", err)
	}
	b.send = client
	b.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siphon_b2bua_calls_total",
		Help: "Calls the b2bua took, by outcome: bridged, or the caller's final response class (4xx, 5xx, 6xx)."}, []string{"outcome"})
	d.Metrics.Registry.MustRegister(b.calls)
	b.sub, err = d.NATS.Subscribe(wire.Replica(wire.RoleB2BUA, b.replica), b.fromReplicaSubject)
	if err != nil {
		return fmt.Errorf("b2bua: subscribe replica subject: %w", err)
	}
	b.svc, err = sipbus.Serve(d.NATS, wire.RoleB2BUA, map[string]sipbus.Handler{
		"INVITE":  b.invite,
		"ACK":     b.ack,
		"BYE":     b.bye,
		"INFO":    b.relay,
		"MESSAGE": b.relay,
		"UPDATE":  b.relay,
		"PRACK":   b.prack,
		"REFER":   b.refer,
	}, sipbus.Options{Workers: workers, Replica: b.replica}, d.Metrics, b.log)
	if err != nil {
		return err
	}
	b.stop = make(chan struct{})
	b.wg.Add(1)
	go b.sweep()
	return nil
}

// Stop implements role.Role.
func (b *B2BUA) Stop(ctx context.Context) error {
	if b.svc == nil {
		return nil
	}
	close(b.stop)
	b.wg.Wait()
	_ = b.sub.Unsubscribe()
	return b.svc.Stop(ctx)
}

// fromReplicaSubject takes what is addressed to this replica alone: a
// CANCEL the edge passes on for a caller's INVITE held here (matched by its
// transaction key, Siphon-Tx), a PRACK another replica took for one, and the
// edge's liveness probes.
func (b *B2BUA) fromReplicaSubject(m *nats.Msg) {
	if bus.AnswerProbe(m) {
		return
	}
	msg, err := sip.ParseMessage(m.Data)
	if err != nil {
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	switch req.Method {
	case sip.CANCEL:
		if v, ok := b.ringing.Load(m.Header.Get(wire.HdrTx)); ok {
			v.(*call).cancelAll("caller cancelled")
		}
	case sip.BYE: // another replica took the caller's BYE of an early dialog held here
		if req.To() != nil {
			b.cancelHeld(tagOf(req.To().Params))
		}
	case sip.PRACK: // another replica took the caller's PRACK of a provisional sent from here
		if rseq, ok := rackRSeq(req); ok && req.To() != nil {
			b.pracked(tagOf(req.To().Params), rseq)
		}
	}
}

// cancelHeld ends the caller's INVITE of call id held here, as a CANCEL does.
func (b *B2BUA) cancelHeld(id string) {
	if v, ok := b.pracks.Load(id); ok {
		v.(*call).cancelAll("caller hung up")
	}
}

// sweep acts on the calls that are due: the store hands each to one
// replica, which ends it (--max-call-duration) or refreshes its session.
func (b *B2BUA) sweep() {
	defer b.wg.Done()
	t := b.clock.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.Chan():
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			due, err := b.bridges.Due(ctx, b.clock.Now(), 100)
			cancel()
			if err != nil {
				b.log.Warn("due calls", "error", err)
			}
			for _, br := range due {
				if br.State == store.BridgeConfirmed {
					// Each on its own: a party slow to answer a BYE
					// holds up nobody else's call.
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), relayTimeout+storeTimeout)
						defer cancel()
						b.dueCall(ctx, br)
					}()
				}
			}
		}
	}
}

// respond sends res and logs a failure once, here.
func (b *B2BUA) respond(r *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", b.userAgent))
	if err := r.Respond(res); err != nil {
		b.log.Warn("respond failed", "error", err)
	}
}

// refuse answers r with a response of the b2bua's own making.
func (b *B2BUA) refuse(r *sipbus.Request, code int, reason, detail string, hdrs ...sip.Header) {
	b.respond(r, sipmsg.Refusal(r.Request, code, reason, "siphon-b2bua", detail, b.ids, hdrs...))
}

// announce publishes ev; a failure is logged, never fatal to the call.
func (b *B2BUA) announce(ev wire.BridgeEvent) {
	ev.Replica, ev.At = b.replica, b.clock.Now()
	data, err := json.Marshal(ev)
	if err == nil {
		err = b.publish(&nats.Msg{Subject: wire.Event(wire.RoleB2BUA, ev.Event), Data: data})
	}
	if err != nil {
		b.log.Warn("event not published", "event", ev.Event, "error", err)
	}
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}
