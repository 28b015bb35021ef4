package main

// siphond run: a scenario once, with an edge of its own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siphon-lab/siphon/pkg/config"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/scenario"
)

// runScenario is `siphond run FILE [flags]`: an edge of its own (the
// transport flags bind its sockets), the scenario once, each step's result
// on stdout; 0 when every step held, 1 when one did not, 2 for a file or a
// flag it cannot use.
func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "siphond run: want a scenario file: siphond run FILE [flags]")
		return 2
	}
	path := args[0]
	var o options
	rest, err := o.runFlags(args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 2
	}
	fs := o.flagSet()
	set, err := config.Parse(fs, rest, getenv)
	if err == nil {
		if !set["metrics-bind"] {
			o.shared.MetricsBind = "" // a one-shot run serves no metrics unless asked
		}
		if !set["log-level"] {
			o.shared.LogLevel = "warn"
		}
		o.shared.Scenario = ""
		_, err = o.validate(set)
	}
	if err == nil {
		o.scenario, err = scenario.Load(path)
		o.shared.Scenario = path
	}
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 2
	}
	if o.report != "" && o.calls == nil {
		o.calls = &scenario.Calls{Calls: 1, Concurrency: 1}
	}
	return o.runOnce(ctx, stdout, stderr, getenv)
}

// runOnce runs the scenario, each actor at a station of its own (or, with
// --nats, at the `siphond --role scenario` workers that join there), and
// says how it went: 0 passed, 1 failed, 2 for what it could not start.
func (o *options) runOnce(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string) int {
	log := obs.NewLogger(stderr, o.shared.LogLevel, o.shared.LogFormat)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	if o.shared.NATS != "" {
		return o.coordinate(ctx, stdout, stderr)
	}
	cast, err := o.startStations(ctx, o.scenario, log, &cleanup)
	if err == nil && o.shared.MetricsBind != "" {
		err = o.serveRunMetrics(ctx, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "siphond run: %v\n", err)
		return 2
	}
	// The edges still have to send what the last steps answered (a
	// scenario's 200 to a BYE) when the scenario ends.
	defer func() {
		select {
		case <-time.After(linger):
		case <-ctx.Done():
		}
	}()
	if o.calls == nil {
		if !scenario.Play(ctx, o.scenario, cast, func(r scenario.Result) { o.count(r); fmt.Fprintln(stdout, r) }) {
			fmt.Fprintln(stdout, "scenario FAILED")
			return 1
		}
		fmt.Fprintln(stdout, "scenario passed")
		return 0
	}
	l := *o.calls
	l.Done = func(c scenario.CallResult) {
		for _, r := range c.Steps {
			o.count(r)
		}
	}
	return o.summarize(scenario.RunCalls(ctx, o.scenario, cast, l, stderr), l, stdout, stderr)
}

// serveRunMetrics serves the run's step counts at --metrics-bind.
func (o *options) serveRunMetrics(ctx context.Context, log *slog.Logger) error {
	metrics := obs.NewMetrics()
	o.steps = stepCounter()
	metrics.Registry.MustRegister(o.steps)
	_, err := obs.Serve(ctx, o.shared.MetricsBind, metrics, obs.NewHealth(), log)
	return err
}

// summarize prints a run of many calls, its failed steps and its summary,
// writes --report, and says how it went.
func (o *options) summarize(sum scenario.Summary, l scenario.Calls, stdout, stderr io.Writer) int {
	for _, c := range sum.Calls {
		for _, r := range c.Steps {
			if !r.OK {
				fmt.Fprintf(stdout, "call %d: %s\n", c.Call, r)
			}
		}
	}
	fmt.Fprintln(stdout, sum)
	if o.report != "" {
		if err := sum.WriteReport(o.report, o.shared.Scenario); err != nil {
			fmt.Fprintf(stderr, "siphond run: --report: %v\n", err)
			return 2
		}
	}
	if sum.Failed > 0 || len(sum.Calls) < l.Calls {
		return 1
	}
	return 0
}

// runFlags takes `siphond run`'s own flags out of args and returns the rest.
func (o *options) runFlags(args []string) ([]string, error) {
	var rest []string
	o.joinTimeout = 30 * time.Second
	calls := scenario.Calls{Calls: 1, Concurrency: 10}
	seen := false
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch name {
		case "calls", "rate", "concurrency", "report", "inf", "join-timeout":
		default:
			rest = append(rest, args[i])
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("--%s: wants a value", name)
			}
			i++
			value = args[i]
		}
		var err error
		switch name {
		case "calls":
			calls.Calls, err = strconv.Atoi(value)
			if err == nil && calls.Calls < 1 {
				err = errors.New("at least 1")
			}
			seen = true
		case "rate":
			calls.Rate, err = strconv.ParseFloat(value, 64)
			if err == nil && calls.Rate < 0 {
				err = errors.New("not negative")
			}
			seen = true
		case "concurrency":
			calls.Concurrency, err = strconv.Atoi(value)
			if err == nil && calls.Concurrency < 1 {
				err = errors.New("at least 1")
			}
			seen = true
		case "report":
			o.report = value
			if !strings.HasSuffix(value, ".xml") && !strings.HasSuffix(value, ".json") {
				err = errors.New("want a .xml (JUnit) or .json file")
			}
		case "inf":
			calls.Rows, err = scenario.ReadRows(value)
			seen = true
		case "join-timeout":
			o.joinTimeout, err = time.ParseDuration(value)
			if err == nil && o.joinTimeout <= 0 {
				err = errors.New("want a positive duration (30s)")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", name, value, err)
		}
	}
	if seen {
		o.calls = &calls
	}
	return rest, nil
}
