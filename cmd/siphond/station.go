package main

// A scenario actor's station: its own edge on its own bus.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/scenario"
	"github.com/siphon-lab/siphon/pkg/store/memstore"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/services/edge"
)

// station is one actor's edge: an embedded bus of its own (so what comes to
// its sockets is its own, whatever other actors run in the process), the
// edge in mode.Scenario bound to the actor's address, the scenario role
// taking what the edge gets into the actor's inbox, and the runner sending
// through that edge.
type station struct {
	runner *scenario.Runner
	// addr is the edge's UDP address (${local_addr}).
	addr string
	// metrics and health are the edge's.
	metrics *obs.Metrics
	health  *obs.Health
}

// startStation starts the station of actor a: the edge configured by the
// command line's transport flags, or bound to a.Bind (UDP and TCP on one
// port; port 0 picks a free one) when the actor names its own.
func (o *options) startStation(ctx context.Context, a *scenario.Actor, log *slog.Logger, cleanup *[]func()) (*station, error) {
	name := a.Name
	if name == "" {
		name = "scenario"
	}
	log = log.With("actor", name)
	cfg := *o.roles[mode.RoleEdge].Config().(*edge.Config)
	cfg.ID = "scenario-" + name
	// A station takes what the system under test sends it, at the run's
	// rate: the edge's per-source limits are for a lab's own edge.
	cfg.UDPRateLimit, cfg.StreamRateLimit = 0, 0
	if a.Bind != "" {
		bind, err := wholeBind(a.Bind)
		if err != nil {
			return nil, fmt.Errorf("actor %s: bind %s: %w", name, a.Bind, err)
		}
		// TLS listens only at the run's --sips-bind (one actor's).
		cfg.UDPBind, cfg.TCPBind, cfg.SIPSBind = bind, bind, ""
	}
	emb, err := bus.StartEmbedded()
	if err != nil {
		return nil, err
	}
	*cleanup = append(*cleanup, emb.Shutdown)
	metrics, health := obs.NewMetrics(), obs.NewHealth()
	gen := ids.FromEnv("scenario-" + name)

	nc, err := emb.Connect("siphon-scenario-" + name)
	if err != nil {
		return nil, err
	}
	// Close, not Drain: Drain finishes in the background, after the embedded
	// server is shut down below it.
	*cleanup = append(*cleanup, nc.Close)
	client, err := uac.New(nc)
	if err != nil {
		return nil, err
	}
	inbox := scenario.NewInbox(clockwork.NewRealClock(), cfg.RoleTimeout)
	stop, err := scenario.Serve(nc, inbox, cfg.ID, gen, metrics, log)
	if err != nil {
		return nil, err
	}
	*cleanup = append(*cleanup, func() { _ = stop(context.Background()) })
	if err := nc.FlushTimeout(stopTimeout); err != nil {
		return nil, fmt.Errorf("actor %s: bus: %w", name, err)
	}

	enc, err := emb.Connect("siphon-edge-" + name)
	if err != nil {
		return nil, err
	}
	*cleanup = append(*cleanup, enc.Close)
	r, _ := role.New(mode.RoleEdge)
	*r.Config().(*edge.Config) = cfg
	deps := role.Deps{Mode: mode.Scenario, NATS: enc, Store: memstore.New(nil), Log: log, Metrics: metrics, Health: health,
		IDs: ids.FromEnv, Clock: clockwork.NewRealClock(), UserAgent: o.shared.UserAgent, LocalURI: o.shared.LocalURI}
	if err := r.Start(ctx, deps); err != nil {
		return nil, fmt.Errorf("actor %s: %w", name, err)
	}
	*cleanup = append(*cleanup, func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		_ = r.Stop(sctx)
	})
	if err := enc.FlushTimeout(stopTimeout); err != nil {
		return nil, fmt.Errorf("actor %s: bus: %w", name, err)
	}
	addr := r.(interface{ Addr(string) string }).Addr(edge.UDP)
	if addr == "" {
		addr = r.(interface{ Addr(string) string }).Addr(edge.TCP)
	}
	return &station{addr: addr, metrics: metrics, health: health, runner: &scenario.Runner{Send: client, IDs: gen, Clock: clockwork.NewRealClock(),
		UserAgent: o.shared.UserAgent, Env: os.Getenv, Vars: map[string]string{"local_addr": addr},
		Actor: a.Name, Inbox: inbox}}, nil
}

// wholeBind is bind with a free port when its port is 0: one port for UDP
// and TCP, so a Contact naming it is right for both.
func wholeBind(bind string) (string, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil || port != "0" {
		return bind, err
	}
	conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return net.JoinHostPort(host, strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port)), nil
}

// startStations starts a station per actor of the scenario (the one actor
// without a bind gets the command line's transport flags) and gives each
// runner the others' addresses as ${addr_NAME}.
func (o *options) startStations(ctx context.Context, sc *scenario.Scenario, log *slog.Logger, cleanup *[]func()) ([]*scenario.Runner, error) {
	flagless := 0
	for i, a := range sc.Actors {
		if a.Bind == "" {
			if flagless++; flagless > 1 {
				return nil, fmt.Errorf("actors[%d] (%s): bind: give each actor but one its own host:port (port 0: any free one); one takes --udp-bind and --tcp-bind", i, a.Name)
			}
		}
	}
	barriers := &scenario.LocalBarriers{Clock: clockwork.NewRealClock()}
	var cast []*scenario.Runner
	addrs := map[string]string{}
	for i := range sc.Actors {
		st, err := o.startStation(ctx, &sc.Actors[i], log, cleanup)
		if err != nil {
			return nil, err
		}
		st.runner.Barriers = barriers
		cast = append(cast, st.runner)
		addrs["addr_"+sc.Actors[i].Name] = st.addr
	}
	for _, rn := range cast {
		for k, v := range addrs {
			if k != "addr_" {
				rn.Vars[k] = v
			}
		}
	}
	return cast, nil
}
