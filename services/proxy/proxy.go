// Package proxy is the proxy role: a stateful forking proxy (RFC 3261 §16)
// over the registrar's location store. Requests outside a dialog for our
// domain go to every binding of their address-of-record, forked by q; the
// response context (reduce.go) is a pure state machine; requests inside a
// dialog follow their Route set. Every branch is a client transaction at an
// edge (pkg/uac), so retransmission, Timer C and CANCEL are the edge's.
package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipdns"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// workers: handlers wait on the location store and on their branches.
const workers = 256

// storeTimeout bounds a location lookup.
const storeTimeout = 5 * time.Second

func init() {
	role.Register(wire.RoleProxy, func() role.Role { return &Proxy{} })
}

// Proxy is one replica of the role.
type Proxy struct {
	cfg       Config
	userAgent string
	loc       store.Location
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	clock     clockwork.Clock
	auth      *auth.Authenticator // --auth: nil when off
	users     func(string) bool   // whether a user is in --auth-users (404 or 480)
	dns       *sipdns.Resolver    // --foreign-domains forward: nil when refused

	replica   string
	publish   func(*nats.Msg) error
	forwarded *prometheus.CounterVec // requests forwarded, by method (each branch; ACKs too)
	branches  prometheus.Histogram   // branches per forwarded INVITE
	timerC    prometheus.Counter     // branches that ended by the edge's Timer C
	send      *uac.Client
	svc       *sipbus.Service
	sub       *nats.Subscription
	calls     sync.Map // Siphon-Tx → *call: INVITEs this replica is forwarding
}

// Name implements role.Role.
func (p *Proxy) Name() string { return wire.RoleProxy }

// Config implements role.Role.
func (p *Proxy) Config() role.Config { return &p.cfg }

// Start implements role.Role.
func (p *Proxy) Start(ctx context.Context, d role.Deps) error {
	p.userAgent, p.loc, p.metrics, p.clock = d.UserAgent, d.Store.Location(), d.Metrics, d.Clock
	p.ids, p.log = d.IDs(wire.RoleProxy), d.Log.With("role", wire.RoleProxy)
	p.replica = p.ids.Tag()
	var local sip.Uri
	if err := sip.ParseUri(d.LocalURI, &local); err == nil && local.Host != "" {
		p.cfg.domains[strings.ToLower(local.Host)] = true // --local-uri's host is ours
	}
	p.users = func(string) bool { return false }
	if d.Auth.Auth || d.Auth.UsersFile != "" {
		p.users = func(u string) bool { _, ok := d.Auth.Users[u]; return ok }
	}
	if d.Auth.Auth {
		a, err := auth.New(ctx, d.Auth, d.Store)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		p.auth = a
	}
	if p.cfg.Foreign == "forward" {
		r, err := sipdns.New(p.cfg.DNSServer)
		if err != nil {
			return fmt.Errorf("proxy: --foreign-domains forward: %w", err)
		}
		p.dns = r
	}
	if err := p.registerMetrics(); err != nil {
		return err
	}
	p.publish = d.NATS.PublishMsg
	client, err := uac.New(d.NATS)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.send = client
	if p.sub, err = d.NATS.Subscribe(wire.Replica(wire.RoleProxy, p.replica), p.fromReplicaSubject); err != nil {
		return fmt.Errorf("proxy: subscribe replica subject: %w", err)
	}
	handlers := map[string]sipbus.Handler{}
	for _, m := range proxied {
		handlers[m] = p.request
	}
	p.svc, err = sipbus.Serve(d.NATS, wire.RoleProxy, handlers, sipbus.Options{Workers: workers, Replica: p.replica}, p.metrics, p.log)
	return err
}

// proxied are the methods a mode may route to the proxy; CANCEL reaches the
// replica holding its INVITE instead (replica.go's edge contract).
var proxied = []string{"INVITE", "ACK", "BYE", "PRACK", "UPDATE", "INFO", "MESSAGE", "REFER", "NOTIFY", "SUBSCRIBE", "OPTIONS"}

// Stop implements role.Role.
func (p *Proxy) Stop(ctx context.Context) error {
	if p.svc == nil {
		return nil
	}
	_ = p.sub.Unsubscribe()
	err := p.svc.Stop(ctx)
	_ = p.send.Close()
	return err
}

func (p *Proxy) registerMetrics() error {
	p.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siphon_proxy_forwarded_total", Help: "Requests the proxy forwarded, by method: one per branch, ACKs included.",
	}, []string{"method"})
	p.branches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "siphon_proxy_invite_branches", Help: "Branches per INVITE the proxy forwarded (forks and serial groups).",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16},
	})
	p.timerC = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "siphon_proxy_timer_c_total", Help: "INVITE branches ended by Timer C (CANCELled, 408 made by the edge).",
	})
	for _, c := range []prometheus.Collector{p.forwarded, p.branches, p.timerC} {
		if err := p.metrics.Registry.Register(c); err != nil {
			return fmt.Errorf("proxy: metrics: %w", err)
		}
	}
	return nil
}

// announce publishes call.routed for a request forwarded to bindings once its
// final response has gone upstream.
func (p *Proxy) announce(ev wire.RouteEvent) {
	ev.Event, ev.Replica, ev.At = wire.EventCallRouted, p.replica, p.clock.Now()
	data, err := json.Marshal(ev)
	if err == nil {
		err = p.publish(&nats.Msg{Subject: wire.Event(wire.RoleProxy, wire.EventCallRouted), Data: data})
	}
	if err != nil {
		p.log.Warn("event not published", "event", ev.Event, "error", err)
	}
}

// fromReplicaSubject takes the caller's CANCEL for an INVITE this replica
// forwards (the edge has answered it 200), matched by Siphon-Tx.
func (p *Proxy) fromReplicaSubject(m *nats.Msg) {
	if bus.AnswerProbe(m) {
		return
	}
	if v, ok := p.calls.Load(m.Header.Get(wire.HdrTx)); ok {
		v.(*call).cancel()
	}
}

// reply answers r with a response of the proxy's own making.
func (p *Proxy) reply(r *sipbus.Request, code int, reason, detail string, hdrs ...sip.Header) {
	res := sipmsg.Refusal(r.Request, code, reason, "siphon-proxy", detail, p.ids, hdrs...)
	res.AppendHeader(sip.NewHeader("Server", p.userAgent))
	if err := r.Respond(res); err != nil {
		p.log.Warn("respond failed", "error", err)
	}
}

// relay passes a response from downstream up to the caller as it came.
func (p *Proxy) relay(r *sipbus.Request, res *sip.Response) {
	if err := r.Respond(res); err != nil {
		p.log.Warn("relay failed", "code", res.StatusCode, "error", err)
	}
}

// ours reports whether host:port names this proxy: a domain of --domain, or
// the edge the request came through.
func (p *Proxy) ours(r *sipbus.Request, host string, port int) bool {
	return p.cfg.isDomain(host) || p.edgeAddress(r, host, port)
}

// edgeAddress reports whether host:port is the edge the request came through:
// its --advertise, its own address, or any address at its port when it
// listens on every interface.
func (p *Proxy) edgeAddress(r *sipbus.Request, host string, port int) bool {
	if port == 0 {
		port = sip.DefaultPort(r.Transport)
	}
	if ahost, aport, err := net.SplitHostPort(r.Advertised); err == nil && strings.EqualFold(host, ahost) && strconv.Itoa(port) == aport {
		return true // the edge's --advertise
	}
	lhost, lport, err := net.SplitHostPort(r.Local)
	if err != nil {
		return false
	}
	if strconv.Itoa(port) != lport {
		return false
	}
	if ip := net.ParseIP(lhost); ip != nil && ip.IsUnspecified() {
		return net.ParseIP(host) != nil
	}
	return strings.EqualFold(host, lhost)
}

func (p *Proxy) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}
