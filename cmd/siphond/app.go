package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/config"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/role"
	"github.com/siphon-lab/siphon/pkg/scenario"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/store/memstore"
	"github.com/siphon-lab/siphon/pkg/store/redisstore"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
	"github.com/siphon-lab/siphon/services/edge"
)

// options is the whole command line: the shared flags, the --auth flags, and
// every registered role's (each registered by its owner).
type options struct {
	shared config.Shared
	auth   auth.Config          // the --auth flags: every challenging role reads them
	roles  map[string]role.Role // every registered role, configured by the flags
	// scenario is --scenario's file, read and checked, or the file of
	// `siphond run`.
	scenario *scenario.Scenario
	// calls and report are `siphond run`'s own flags: --calls, --rate,
	// --concurrency, --inf; --report.
	calls  *scenario.Calls
	report string
	// joinTimeout is `siphond run --join-timeout`: how long a run with --nats
	// waits for a worker per actor.
	joinTimeout time.Duration
	// connect and steps are set by start: the bus, the scenario's counter.
	connect func(name string) (*nats.Conn, error)
	steps   *prometheus.CounterVec
	metrics *obs.Metrics
}

func (o *options) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("siphond", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.shared.RegisterFlags(fs)
	o.auth.RegisterFlags(fs)
	o.roles = map[string]role.Role{}
	for _, name := range role.Registered() {
		r, _ := role.New(name)
		o.roles[name] = r
		r.Config().RegisterFlags(fs)
	}
	return fs
}

// plan is what this process will run.
type plan struct {
	mode  mode.Mode
	roles []string
}

func (p plan) has(role string) bool { return slices.Contains(p.roles, role) }

// run is siphond: 0 after a clean stop, 2 for bad configuration, 1 when it
// could not start.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "run" {
		return runScenario(ctx, args[1:], stdout, stderr, getenv)
	}
	var o options
	fs := o.flagSet()
	set, err := config.Parse(fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout, fs)
		return 0
	}
	var p plan
	if err == nil {
		p, err = o.validate(set)
	}
	if err == nil {
		err = o.preflight(p)
	}
	switch {
	case err == nil && p.has(wire.RoleScenario):
		return o.serveWorker(ctx, stderr)
	case err == nil:
		return o.serve(ctx, p, stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "siphond: %v (see siphond --help)\n", err)
	return 2
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "Usage: siphond [flags]\n\nEvery flag can also be set as SIPHON_<FLAG> in the environment (--udp-bind: SIPHON_UDP_BIND).\n\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// validate checks every flag and decides which roles run. Every role's flags
// are checked whatever runs: a bad users file is bad configuration even in a
// process that does not read it.
func (o *options) validate(set map[string]bool) (plan, error) {
	md, err := mode.Lookup(o.shared.Mode)
	if err != nil {
		return plan{}, fmt.Errorf("--mode: %w", err)
	}
	p := plan{mode: md}
	if p.roles, err = roles(o.shared.Role, md); err != nil {
		return plan{}, err
	}
	if o.shared.NATS == "" && p.has(wire.RoleScenario) {
		return plan{}, errors.New("--role scenario joins the `siphond run FILE --nats URL` that coordinates: give --nats")
	}
	if o.shared.NATS == "" && (!p.has(mode.RoleEdge) || len(p.roles) == 1) {
		return plan{}, fmt.Errorf("--role %s runs part of a lab: give --nats so its other parts can reach it", o.shared.Role)
	}
	if err := o.shared.Validate(); err != nil {
		return plan{}, err
	}
	if err := o.auth.Validate(); err != nil {
		return plan{}, err
	}
	if o.shared.Scenario != "" {
		if o.scenario, err = scenario.Load(o.shared.Scenario); err != nil {
			return plan{}, fmt.Errorf("--scenario: %w", err)
		}
	}
	for _, name := range role.Registered() {
		if err := o.roles[name].Config().Validate(set); err != nil {
			return plan{}, err
		}
	}
	return p, nil
}

// roles resolves --role: "all" is the edge and every built role the mode needs.
func roles(flagValue string, md mode.Mode) ([]string, error) {
	built := role.Registered()
	if flagValue == wire.RoleScenario {
		return []string{wire.RoleScenario}, nil // a worker: a station and the coordinator's jobs
	}
	if flagValue == "all" {
		out := []string{mode.RoleEdge}
		for _, r := range md.Roles() {
			if slices.Contains(built, r) {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(a, b string) int { return startOrder(a) - startOrder(b) })
		return out, nil
	}
	var out []string
	for _, r := range strings.Split(flagValue, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == wire.RoleScenario:
			return nil, errors.New("--role scenario runs alone: a worker with an edge of its own")
		case !slices.Contains(mode.Roles, r):
			return nil, fmt.Errorf("--role: unknown role %q (want edge, registrar, proxy, b2bua, uas, events, a comma list, all, or scenario)", r)
		case !slices.Contains(built, r):
			return nil, fmt.Errorf("--role: the %s role is not built yet (built: %s)", r, strings.Join(built, ", "))
		case !slices.Contains(out, r):
			out = append(out, r)
		}
	}
	// Start in mode.Roles order: the edge last, once the roles it hands
	// requests to are on the bus.
	slices.SortFunc(out, func(a, b string) int { return startOrder(a) - startOrder(b) })
	return out, nil
}

// startOrder puts the edge after every other role.
func startOrder(name string) int {
	if name == mode.RoleEdge {
		return len(mode.Roles)
	}
	return slices.Index(mode.Roles, name)
}

// serve starts the plan and runs until a signal or ctx ends it.
func (o *options) serve(ctx context.Context, p plan, stdout, stderr io.Writer, getenv func(string) string) int {
	log := obs.NewLogger(stderr, o.shared.LogLevel, o.shared.LogFormat)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	tuneMemory(ctx, getenv)
	defer stop()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	cast, err := o.start(ctx, p, log, &cleanup)
	if err != nil {
		log.Error("siphond could not start", "error", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			return 2 // taken since the preflight: still the configuration's
		}
		return 1
	}
	if o.scenario != nil {
		go func() {
			ok := scenario.Play(ctx, o.scenario, cast, func(r scenario.Result) {
				o.count(r)
				if r.OK {
					log.Info("scenario step", "result", r.String())
				} else {
					log.Warn("scenario step", "result", r.String())
				}
			})
			log.Info("scenario done", "passed", ok, "file", o.shared.Scenario)
		}()
	}
	<-ctx.Done()
	log.Info("siphond stopping")
	return 0
}

// stopTimeout bounds how long each role may drain when siphond stops.
const stopTimeout = 10 * time.Second

// linger is how long `siphond run` stays after its last step: for its
// edge to send the responses the scenario gave last, and absorb their
// retransmissions' first rounds.
const linger = 500 * time.Millisecond

// start starts the plan's roles, and --scenario's runners: siphond's
// one-party scenario sends through this process's edge; actors of their own
// (a bind each) get stations.
func (o *options) start(ctx context.Context, p plan, log *slog.Logger, cleanup *[]func()) ([]*scenario.Runner, error) {
	err := o.startRoles(ctx, p, log, cleanup)
	if err != nil || o.scenario == nil {
		return nil, err
	}
	sc := o.scenario
	if len(sc.Actors) > 1 || sc.Actors[0].Bind != "" {
		for i, a := range sc.Actors {
			if a.Bind == "" {
				return nil, fmt.Errorf("--scenario: actors[%d] (%s): bind: in a daemon each actor needs its own host:port (port 0: any free one)", i, a.Name)
			}
		}
		return o.startStations(ctx, sc, log, cleanup)
	}
	if !p.has(mode.RoleEdge) {
		return nil, errors.New("--scenario needs an edge in this process to send through (--role all, or one with edge), or a bind of its own")
	}
	nc, err := o.connect("siphon-scenario")
	if err != nil {
		return nil, err
	}
	*cleanup = append(*cleanup, func() { _ = nc.Drain() })
	client, err := uac.New(nc)
	if err != nil {
		return nil, err
	}
	// Requests to the daemon's edge go to its mode's roles: an expect
	// request of this actor fails at once (no Inbox).
	local := o.roles[mode.RoleEdge].Config().(*edge.Config).UDPBind
	return []*scenario.Runner{{Send: client, IDs: ids.FromEnv("scenario"), Clock: clockwork.NewRealClock(),
		UserAgent: o.shared.UserAgent, Env: os.Getenv, Vars: map[string]string{"local_addr": local}}}, nil
}

func stepCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siphon_scenario_steps_total",
		Help: "Scenario steps run (--scenario, siphond run), by type and outcome (ok, failed)."}, []string{"type", "outcome"})
}

// count counts a scenario step's outcome in /metrics.
func (o *options) count(r scenario.Result) {
	if o.steps == nil {
		return // siphond run without --metrics-bind
	}
	outcome := "ok"
	if !r.OK {
		outcome = "failed"
	}
	o.steps.WithLabelValues(r.Step.Type, outcome).Inc()
}

func (o *options) startRoles(ctx context.Context, p plan, log *slog.Logger, cleanup *[]func()) error {
	metrics, health := obs.NewMetrics(), obs.NewHealth()
	for _, r := range p.mode.Roles() {
		if _, built := o.roles[r]; !built && o.shared.Role == "all" {
			log.Warn("role not built yet: its requests are answered 503", "role", r, "mode", p.mode.Name)
		}
	}

	connect, err := o.busConnector(ctx, log, cleanup)
	if err != nil {
		return err
	}
	o.connect, o.metrics = connect, metrics
	o.steps = stepCounter()
	metrics.Registry.MustRegister(o.steps)
	var conns []*nats.Conn
	metrics.Gauge("siphon_nats_connected", "1 when every NATS connection of this process is up.", func() float64 {
		for _, nc := range conns {
			if !nc.IsConnected() {
				return 0
			}
		}
		return 1
	})
	health.Check("nats", func(context.Context) error {
		for _, nc := range conns {
			if !nc.IsConnected() {
				return fmt.Errorf("%s: %s", nc.Opts.Name, nc.Status())
			}
		}
		return nil
	})

	state, err := o.openStore(metrics, health)
	if err != nil {
		return err
	}
	*cleanup = append(*cleanup, func() { _ = state.Close() })

	host, _ := os.Hostname()
	for _, name := range p.roles {
		nc, err := connect("siphon-" + name + "-" + host)
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		*cleanup = append(*cleanup, func() { _ = nc.Drain() })
		r := o.roles[name]
		deps := role.Deps{
			Mode: p.mode, NATS: nc, Store: state, Log: log, Metrics: metrics, Health: health,
			IDs: ids.FromEnv, Clock: clockwork.NewRealClock(), UserAgent: o.shared.UserAgent, LocalURI: o.shared.LocalURI, Auth: o.auth,
			EnableRefer: o.shared.EnableRefer,
		}
		if err := r.Start(ctx, deps); err != nil {
			return err
		}
		*cleanup = append(*cleanup, func() {
			sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			if err := r.Stop(sctx); err != nil {
				log.Warn("role did not stop cleanly", "role", r.Name(), "error", err)
			}
		})
	}
	// A scenario's first request to the edge goes once the edge's
	// subscriptions are in the server. (Only then: a lab process may start
	// before its NATS does, and wait for it.)
	if o.scenario != nil {
		for _, nc := range conns {
			if err := nc.FlushTimeout(stopTimeout); err != nil {
				log.Warn("scenario: NATS not flushed", "error", err)
			}
		}
	}
	if o.shared.MetricsBind != "" {
		addr, err := obs.Serve(ctx, o.shared.MetricsBind, metrics, health, log)
		if err != nil {
			return err
		}
		log.Info("serving /metrics, /healthz, /readyz", "addr", addr)
	}
	log.Info("siphond running", "mode", p.mode.Name, "roles", strings.Join(p.roles, ","),
		"nats", orDefault(o.shared.NATS, "embedded"), "state", orDefault(o.shared.Redis, "memory"))
	return nil
}

// busConnector returns how this process's roles connect: to the embedded
// server (started here) when --nats is empty, else to the given server.
func (o *options) busConnector(ctx context.Context, log *slog.Logger, cleanup *[]func()) (func(name string) (*nats.Conn, error), error) {
	if o.shared.NATS != "" {
		return func(name string) (*nats.Conn, error) { return bus.Dial(ctx, o.shared.NATS, name, log) }, nil
	}
	emb, err := bus.StartEmbedded()
	if err != nil {
		return nil, err
	}
	*cleanup = append(*cleanup, emb.Shutdown)
	return emb.Connect, nil
}

// openStore opens Redis when --redis is set, else the in-memory store.
func (o *options) openStore(metrics *obs.Metrics, health *obs.Health) (store.Backend, error) {
	if o.shared.Redis == "" {
		return memstore.New(nil), nil
	}
	b, err := redisstore.Open(o.shared.Redis)
	if err != nil {
		return nil, err
	}
	health.Check("redis", b.Ping)
	metrics.Gauge("siphon_redis_up", "1 when Redis answered a ping at scrape time.", func() float64 {
		if b.Ping(context.Background()) != nil {
			return 0
		}
		return 1
	})
	return b, nil
}

func orDefault(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}
