package main

// siphond run: a scenario once, with an edge of its own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/config"
	"github.com/siphon-lab/siphon/pkg/mode"
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
		o.localAddr = fs.Lookup("udp-bind").Value.String()
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
	md := mode.Scenario // every request the run's edge gets is the scenario's
	o.oneShot = true
	if o.report != "" && o.calls == nil {
		o.calls = &scenario.Calls{Calls: 1, Concurrency: 1}
	}
	return o.serve(ctx, plan{mode: md, roles: []string{mode.RoleEdge}}, stdout, stderr, getenv)
}

// runFlags takes `siphond run`'s own flags out of args and returns the rest.
func (o *options) runFlags(args []string) ([]string, error) {
	var rest []string
	calls := scenario.Calls{Calls: 1, Concurrency: 10}
	seen := false
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch name {
		case "calls", "rate", "concurrency", "report", "inf":
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

// scenarioRunner is the scenario runner with the process's step counter.
type scenarioRunner struct {
	scenario.Runner
	steps *prometheus.CounterVec
}

// Count counts a step's outcome in /metrics.
func (s *scenarioRunner) Count(r scenario.Result) {
	outcome := "ok"
	if !r.OK {
		outcome = "failed"
	}
	s.steps.WithLabelValues(r.Step.Type, outcome).Inc()
}
