package main

// siphond --role scenario: a worker of distributed scenario runs.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/scenario"
)

// serveWorker is `siphond --role scenario --nats URL`: a station of its own
// (bound by the transport flags) that plays the actors the coordinators on
// that NATS give it (--scenario-actor: only that one), until a signal.
func (o *options) serveWorker(ctx context.Context, stderr io.Writer) int {
	log := obs.NewLogger(stderr, o.shared.LogLevel, o.shared.LogFormat)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	st, err := o.startStation(ctx, &scenario.Actor{Name: o.shared.ScenarioActor}, log, &cleanup)
	if err != nil {
		log.Error("siphond could not start", "error", err)
		return 1
	}
	host, _ := os.Hostname()
	id := host + "-" + ids.FromEnv("scenario-worker").Tag()
	nc, err := bus.Dial(ctx, o.shared.NATS, "siphon-scenario-"+id, log)
	if err != nil {
		log.Error("siphond could not start", "error", err)
		return 1
	}
	defer func() { _ = nc.Drain() }()
	if o.shared.MetricsBind != "" {
		st.health.Check("nats", func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("%s: %s", nc.Opts.Name, nc.Status())
			}
			return nil
		})
		if _, err := obs.Serve(ctx, o.shared.MetricsBind, st.metrics, st.health, log); err != nil {
			log.Error("siphond could not start", "error", err)
			return 1
		}
	}
	w := &scenario.Worker{NC: nc, Info: scenario.WorkerInfo{ID: id, Actor: o.shared.ScenarioActor, Addr: st.addr}, Log: log,
		Runner: func(actor string) *scenario.Runner {
			rn := *st.runner
			rn.Actor, rn.Vars = actor, map[string]string{}
			for k, v := range st.runner.Vars {
				rn.Vars[k] = v
			}
			return &rn
		}}
	if err := w.Serve(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// coordinate is `siphond run FILE --nats URL`: the actors are played by
// the workers that join there; this process has no edge.
func (o *options) coordinate(ctx context.Context, stdout, stderr io.Writer) int {
	log := obs.NewLogger(stderr, o.shared.LogLevel, o.shared.LogFormat)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	file, err := os.ReadFile(o.shared.Scenario)
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 2
	}
	// A one-shot run gives NATS as long as it gives the workers to join.
	dialCtx, cancelDial := context.WithTimeout(ctx, o.joinTimeout)
	nc, err := bus.Dial(dialCtx, o.shared.NATS, "siphon-scenario-run", log)
	cancelDial()
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 1
	}
	defer func() { _ = nc.Drain() }()
	co := &scenario.Coordinator{NC: nc, Clock: clockwork.NewRealClock(), RunID: ids.FromEnv("scenario-run").Tag(),
		JoinTimeout: o.joinTimeout, Progress: stderr}
	cast, err := co.Join(ctx, o.scenario)
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 1
	}
	for actor, ws := range cast {
		for _, w := range ws {
			fmt.Fprintf(stderr, "actor %s: worker %s at %s\n", orDefault(actor, `""`), w.ID, w.Addr)
		}
	}
	l := scenario.Calls{Calls: 1, Concurrency: 1}
	if o.calls != nil {
		l = *o.calls
	}
	sum, err := co.Run(ctx, o.scenario, file, o.shared.Scenario, cast, l)
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 1
	}
	if o.calls == nil && len(sum.Calls) == 1 {
		for _, r := range sum.Calls[0].Steps {
			fmt.Fprintln(stdout, r)
		}
		if sum.Failed > 0 {
			fmt.Fprintln(stdout, "scenario FAILED")
			return 1
		}
		fmt.Fprintln(stdout, "scenario passed")
		return 0
	}
	return o.summarize(sum, l, stdout, stderr)
}
