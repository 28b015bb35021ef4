// Package edge is siphon's SIP edge: it owns the sockets, parsing and SIP
// transactions, hands each request to its role over NATS, relays every response
// back, and sends what roles ask it to send. It holds no dialog or registration
// state, so any number of roles can stand behind one edge.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// Transports the edge listens on, as sipgo names them.
const (
	UDP = "udp"
	TCP = "tcp"
	TLS = "tls"
	WS  = "ws"
	WSS = "wss"
)

// udpReadBuffer is the receive buffer asked for on the UDP listener.
const udpReadBuffer = 4 << 20

func init() {
	// sipgo reads a datagram into 32 KiB and refuses to write one over
	// 1,300 bytes. A UDP datagram carries up to 65,507 bytes, and a response
	// goes back over the transport its request came by (RFC 3261 §18.2.2):
	// so read whole datagrams, and send what a role answers whatever its
	// size, as Kamailio does by default (udp_mtu 0: no switch to TCP).
	sip.TransportBufferReadSize = 65535
	sip.UDPMTUSize = 1 << 20
	role.Register(wire.RoleEdge, func() role.Role { return &Edge{} })
}

// Edge is one running edge.
type Edge struct {
	cfg       Config
	mode      mode.Mode
	nc        *nats.Conn
	log       *slog.Logger
	metrics   *obs.Metrics
	ids       *ids.Generator
	clock     clockwork.Clock
	userAgent string

	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	streamer *bus.Streamer
	routes   map[string]*route
	sendSvc  micro.Service
	replay   *replayCache
	acks     inFlight[chan struct{}] // the 2xx being retransmitted until their ACK, by Call-ID and CSeq
	invites  inFlight[*inviteRelay]  // INVITE server transactions a CANCEL can match, by inviteKey
	branches inFlight[*branch]       // client transactions roles asked for, by branch
	prober   *prober                 // role replicas with INVITE branches in flight
	// branchesCancelled counts the INVITE branches the edge CANCELled, by why.
	branchesCancelled *prometheus.CounterVec
	udpLimit          *sourceLimiter         // --udp-rate-limit, per source IP
	rateLimited       *prometheus.CounterVec // requests over a limit, by transport
	userLimited       *prometheus.CounterVec // REGISTERs and INVITEs over --user-rate-limit, by method
	eph               store.Ephemeral        // --user-rate-limit's counters, shared by every edge
	limitWarned       warnEvery              // the last over-the-limit warning
	conns             connCounter            // open TCP/TLS connections, for --max-connections
	connsWarned       warnEvery              // the last too-many-connections warning
	transactions      atomic.Int64           // requests relayed to roles and not yet answered, for --max-transactions

	mu    sync.Mutex
	udp   net.PacketConn
	addrs map[string]string // transport → bound address
	close []func() error
}

// Name implements role.Role.
func (e *Edge) Name() string { return wire.RoleEdge }

// Config implements role.Role.
func (e *Edge) Config() role.Config { return &e.cfg }

// setup builds the edge from its dependencies; Start binds it.
func (e *Edge) setup(d role.Deps) error {
	m := d.Metrics
	e.mode, e.nc, e.log, e.metrics, e.clock, e.userAgent = d.Mode, d.NATS, d.Log.With("role", wire.RoleEdge), m, d.Clock, d.UserAgent
	e.ids = d.IDs(wire.RoleEdge + "/" + e.cfg.ID)
	e.addrs = map[string]string{}
	e.routes = buildRoutes(e.mode, m)
	e.replay = newReplayCache()
	e.acks.m = map[string]chan struct{}{}
	e.invites.m, e.branches.m = map[string]*inviteRelay{}, map[string]*branch{}
	e.prober = newProber(e.nc, e.clock, e.cfg.SenderCheck, e.log)
	e.branchesCancelled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siphon_edge_branches_cancelled_total",
		Help: "INVITE branches the edge CANCELled, by why: role (the cancel endpoint), timer-c, asker-gone.",
	}, []string{"reason"})
	e.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siphon_edge_rate_limited_total",
		Help: "Requests over their source's limit (--udp-rate-limit per IP, --stream-rate-limit per connection), dropped or answered 503, by transport.",
	}, []string{"transport"})
	e.userLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "siphon_edge_user_limited_total",
		Help: "REGISTERs and INVITEs over --user-rate-limit (counted across edges), answered 503, by method.",
	}, []string{"method"})
	if d.Store != nil {
		e.eph = d.Store.Ephemeral()
	}
	for _, c := range []prometheus.Collector{e.branchesCancelled, e.rateLimited, e.userLimited} {
		if err := m.Registry.Register(c); err != nil {
			return fmt.Errorf("edge: metrics: %w", err)
		}
	}
	e.udpLimit = newSourceLimiter(e.cfg.UDPRateLimit, e.cfg.burst(e.cfg.UDPRateLimit), e.clock)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(e.userAgent),
		sipgo.WithUserAgentParser(edgeParser()),
		sipgo.WithUserAgenTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.cfg.TLSSkipVerify}), //nolint:gosec // --tls-skip-verify asks for it
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerReadFilter(e.readFilter),
			sip.WithTransportLayerLogger(sipLogger(e.log, m)),
		),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLogger(e.log, m))),
	)
	if err != nil {
		return fmt.Errorf("edge: user agent: %w", err)
	}
	e.ua = ua
	if e.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(e.log)); err != nil {
		return fmt.Errorf("edge: server: %w", err)
	}
	e.srv.OnNoRoute(e.serve)
	if e.client, err = sipgo.NewClient(ua, sipgo.WithClientLogger(e.log)); err != nil {
		return fmt.Errorf("edge: client: %w", err)
	}
	if e.streamer, err = bus.NewStreamer(e.nc); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	d.Health.Check(wire.RoleEdge, e.Ready)
	return nil
}

// edgeParser parses only the headers the edge itself reads: the transaction key
// (Via, CSeq), what a response it makes copies (From, To, Call-ID) and the
// framing (Content-Length, Max-Forwards). Contact, Route and the rest stay raw
// lines: roles parse them from the bytes the edge forwards. Over UDP a server
// transaction keeps its request for Timer J (32 s), so every parsed header the
// edge skips is memory it does not hold at 10,000 requests a second.
func edgeParser() *sip.Parser {
	all := sip.DefaultHeadersParser()
	keep := sip.HeadersParser{}
	for _, name := range []string{"via", "v", "cseq", "from", "f", "to", "t", "call-id", "i", "content-length", "l", "max-forwards"} {
		keep[name] = all[name]
	}
	return sip.NewParser(sip.WithHeadersParsers(keep))
}

// Start implements role.Role: it binds every configured listener and joins the
// bus. A listener that cannot bind is an error: the edge never runs with less
// than it was asked for.
func (e *Edge) Start(ctx context.Context, d role.Deps) error {
	if err := e.setup(d); err != nil {
		return err
	}
	if e.cfg.UDPBind != "" {
		conn, err := net.ListenPacket("udp", e.cfg.UDPBind)
		if err != nil {
			return fmt.Errorf("edge: listen udp %s: %w", e.cfg.UDPBind, err)
		}
		// A burst of datagrams must wait in the kernel, not be dropped: the OS
		// default (about 200 KiB) overflows at a few thousand requests a second.
		// The kernel caps this at net.core.rmem_max.
		if uc, ok := conn.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(udpReadBuffer)
		}
		e.listening(UDP, conn.LocalAddr().String(), conn.Close)
		e.mu.Lock()
		e.udp = conn
		e.mu.Unlock()
		go e.serveTransport(UDP, func() error { return e.srv.ServeUDP(conn) })
	}
	for _, l := range []struct {
		transport, bind string
		secure          bool
		serve           func(net.Listener) error
	}{
		{TCP, e.cfg.TCPBind, false, func(ln net.Listener) error { return e.srv.ServeTCP(e.streamListener(ln, TCP)) }},
		{TLS, e.cfg.SIPSBind, true, func(ln net.Listener) error { return e.srv.ServeTLS(e.streamListener(ln, TLS)) }},
		{WS, e.cfg.WSBind, false, func(ln net.Listener) error { return e.srv.ServeWS(e.wsListener(ln, WS)) }},
		{WSS, e.cfg.WSSBind, true, func(ln net.Listener) error { return e.srv.ServeWSS(e.wsListener(ln, WSS)) }},
	} {
		if l.bind == "" {
			continue
		}
		if err := e.listenStream(l.transport, l.bind, l.secure, l.serve); err != nil {
			return err
		}
	}
	if err := e.startSend(); err != nil {
		return err
	}
	return nil
}

// listenStream binds a stream transport's listener (over TLS when secure)
// and serves it.
func (e *Edge) listenStream(transport, bind string, secure bool, serve func(net.Listener) error) error {
	var ln net.Listener
	var err error
	if secure {
		if e.cfg.TLS == nil {
			return fmt.Errorf("edge: %s listener at %s without a loaded certificate", transport, bind)
		}
		ln, err = tls.Listen("tcp", bind, e.cfg.TLS)
	} else {
		ln, err = net.Listen("tcp", bind)
	}
	if err != nil {
		return fmt.Errorf("edge: listen %s %s: %w", transport, bind, err)
	}
	e.listening(transport, ln.Addr().String(), ln.Close)
	go e.serveTransport(transport, func() error { return serve(ln) })
	return nil
}

func (e *Edge) listening(transport, addr string, closer func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addrs[transport] = addr
	e.close = append(e.close, closer)
	e.log.Info("listening", "transport", transport, "addr", addr)
}

func (e *Edge) serveTransport(transport string, serve func() error) {
	if err := serve(); err != nil && !errors.Is(err, net.ErrClosed) {
		e.log.Error("listener stopped", "transport", transport, "error", err)
	}
}

// Addr is the address a transport is bound to, "" when it is off.
func (e *Edge) Addr(transport string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addrs[transport]
}

// Ready reports whether the edge can take traffic: its listeners are bound and
// the bus is connected.
func (e *Edge) Ready(context.Context) error {
	e.mu.Lock()
	n := len(e.addrs)
	e.mu.Unlock()
	if n == 0 {
		return errors.New("no SIP listener bound")
	}
	if !e.nc.IsConnected() {
		return errors.New("nats not connected")
	}
	return nil
}

// Stop implements role.Role: the edge leaves the bus and closes its listeners;
// the branches it holds end with it.
func (e *Edge) Stop(context.Context) error {
	if e.ua == nil {
		return nil
	}
	e.mu.Lock()
	closers := e.close
	e.close = nil
	e.mu.Unlock()
	if e.sendSvc != nil {
		_ = e.sendSvc.Stop()
	}
	for _, c := range closers {
		_ = c()
	}
	_ = e.streamer.Close()
	_ = e.ua.Close()
	e.replay.close()
	e.prober.close()
	return nil
}

// inFlight is what the edge holds by key while it lasts: the INVITEs it
// relays, the branches it runs.
type inFlight[T comparable] struct {
	mu sync.Mutex
	m  map[string]T
}

func (f *inFlight[T]) get(key string) T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key]
}

func (f *inFlight[T]) put(key string, v T) {
	f.mu.Lock()
	f.m[key] = v
	f.mu.Unlock()
}

// take removes key and returns what it held.
func (f *inFlight[T]) take(key string) (T, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	delete(f.m, key)
	return v, ok
}

// drop forgets key if it still holds v (a later holder of the key stays).
func (f *inFlight[T]) drop(key string, v T) {
	f.mu.Lock()
	if f.m[key] == v {
		delete(f.m, key)
	}
	f.mu.Unlock()
}
