package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// A distributed run: `siphond run FILE --nats URL` coordinates, workers
// (`siphond --role scenario --nats URL`, each with its own edge) play the
// actors. The coordinator calls the roll (wire.ScenarioWorkers) until every
// actor has a worker (one named for it by --scenario-actor, else any idle
// one), gives each worker its actor's share of the calls (wire.ScenarioWorker),
// holds each barrier until every party has come (wire.ScenarioBarrier), and
// adds up the calls the workers report (wire.ScenarioCall).

// WorkerInfo is a worker's answer to the roll call.
type WorkerInfo struct {
	ID string `json:"id"`
	// Actor is the actor it plays (--scenario-actor), or "" for any.
	Actor string `json:"actor,omitempty"`
	// Addr is its edge's address (${addr_NAME} for the other actors).
	Addr string `json:"addr"`
}

// Job is one worker's share of a run.
type Job struct {
	Run string `json:"run"`
	// File is the scenario file as written, Name its name (YAML by its
	// extension): the worker reads it as siphond run does.
	File  []byte `json:"file"`
	Name  string `json:"name"`
	Actor string `json:"actor"`
	// It makes the calls First, First+Step, … up to Calls, each when it
	// starts in the whole run at Rate, Concurrency at once; Rows are the CSV
	// rows of the run.
	First       int                 `json:"first"`
	Step        int                 `json:"step"`
	Calls       int                 `json:"calls"`
	Rate        float64             `json:"rate,omitempty"`
	Concurrency int                 `json:"concurrency"`
	Rows        []map[string]string `json:"rows,omitempty"`
	// Addrs are every actor's workers' addresses, in the order they share
	// its calls: ${addr_NAME} of call n is the one that plays it.
	Addrs map[string][]string `json:"addrs,omitempty"`
}

// numbers are the calls of j.
func (j Job) numbers() []int {
	var out []int
	for n := j.First; n >= 1 && j.Step >= 1 && n <= j.Calls; n += j.Step {
		out = append(out, n)
	}
	return out
}

// vars are call n's ${addr_NAME}.
func (j Job) vars(n int) map[string]string {
	out := map[string]string{}
	for actor, addrs := range j.Addrs {
		if len(addrs) > 0 {
			out["addr_"+actor] = addrs[(n-1)%len(addrs)]
		}
	}
	return out
}

// liveness is a worker's answer to a liveness check: the run it is on.
type liveness struct {
	Run string `json:"run,omitempty"`
}

// jobReply is a worker's answer to a job: "" taken, else why not.
type jobReply struct {
	Error string `json:"error,omitempty"`
}

// wireCall is a CallResult on the bus (an error as its text).
type wireCall struct {
	Call      int             `json:"call"`
	Passed    bool            `json:"passed"`
	Steps     []wireResult    `json:"steps"`
	Elapsed   time.Duration   `json:"elapsed"`
	SendTimes []time.Duration `json:"send_times,omitempty"`
}

type wireResult struct {
	Actor   string        `json:"actor,omitempty"`
	Index   int           `json:"index"`
	Step    Step          `json:"step"`
	OK      bool          `json:"ok"`
	Got     string        `json:"got,omitempty"`
	Err     string        `json:"err,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

func toWire(c CallResult) wireCall {
	w := wireCall{Call: c.Call, Passed: c.Passed, Elapsed: c.Elapsed, SendTimes: c.SendTimes}
	for _, r := range c.Steps {
		w.Steps = append(w.Steps, wireResult{Actor: r.Actor, Index: r.Index, Step: r.Step, OK: r.OK, Got: r.Got, Err: errText(r.Err), Elapsed: r.Elapsed})
	}
	return w
}

func (w wireCall) result() CallResult {
	c := CallResult{Call: w.Call, Passed: w.Passed, Elapsed: w.Elapsed, SendTimes: w.SendTimes}
	for _, r := range w.Steps {
		res := Result{Actor: r.Actor, Index: r.Index, Step: r.Step, OK: r.OK, Got: r.Got, Elapsed: r.Elapsed}
		if r.Err != "" {
			res.Err = errors.New(r.Err)
		}
		c.Steps = append(c.Steps, res)
	}
	return c
}

// Coordinator runs a scenario at the workers that answer on NC.
type Coordinator struct {
	NC    *nats.Conn
	Clock clockwork.Clock
	// RunID names this run on the bus.
	RunID string
	// JoinTimeout bounds the wait for a worker per actor.
	JoinTimeout time.Duration
	// Progress gets the waiting and the calls' progress.
	Progress io.Writer
}

// Cast is which workers play which actor.
type Cast map[string][]WorkerInfo

// Join calls the roll until every actor of sc has a worker: those named for
// it, then an idle one named for none.
func (co *Coordinator) Join(ctx context.Context, sc *Scenario) (Cast, error) {
	deadline := co.Clock.Now().Add(co.JoinTimeout)
	for {
		workers, err := co.rollCall(ctx)
		if err != nil {
			return nil, err
		}
		cast, missing := assign(sc, workers)
		if len(missing) == 0 {
			return cast, nil
		}
		if !co.Clock.Now().Before(deadline) {
			return nil, fmt.Errorf("no worker joined for actor %s within %v: start `siphond --role scenario --nats URL --scenario-actor %s` (%d idle workers answered)",
				strings.Join(missing, ", "), co.JoinTimeout, missing[0], len(workers))
		}
		fmt.Fprintf(co.Progress, "waiting for workers: actor %s has none yet (siphond --role scenario --nats URL [--scenario-actor NAME])\n", strings.Join(missing, ", "))
		select {
		case <-co.Clock.After(time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// rollCall gathers the idle workers' answers for a moment.
func (co *Coordinator) rollCall(ctx context.Context) ([]WorkerInfo, error) {
	inbox := co.NC.NewRespInbox()
	answers := make(chan *nats.Msg, 256)
	sub, err := co.NC.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, fmt.Errorf("scenario: roll call: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := co.NC.PublishRequest(wire.ScenarioWorkers, inbox, nil); err != nil {
		return nil, fmt.Errorf("scenario: roll call: %w", err)
	}
	var out []WorkerInfo
	window := co.Clock.After(300 * time.Millisecond)
	for {
		select {
		case m := <-answers:
			var w WorkerInfo
			if json.Unmarshal(m.Data, &w) == nil && w.ID != "" {
				out = append(out, w)
			}
		case <-window:
			sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
			return out, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// assign gives each actor the workers named for it, and an actor that has
// none one of the workers named for no actor; missing are the actors left
// without.
func assign(sc *Scenario, workers []WorkerInfo) (Cast, []string) {
	cast := Cast{}
	var anyone []WorkerInfo
	for _, w := range workers {
		switch {
		case w.Actor == "":
			anyone = append(anyone, w)
		case sc.Actor(w.Actor) != nil:
			cast[w.Actor] = append(cast[w.Actor], w)
		}
	}
	var missing []string
	for _, a := range sc.Actors {
		if len(cast[a.Name]) > 0 {
			continue
		}
		if len(anyone) == 0 {
			missing = append(missing, orDefault(a.Name, `""`))
			continue
		}
		cast[a.Name], anyone = anyone[:1], anyone[1:]
	}
	return cast, missing
}

// Run gives the workers of cast their shares of sc's calls (file is sc as
// written, name its file name) and adds up what they report.
func (co *Coordinator) Run(ctx context.Context, sc *Scenario, file []byte, name string, cast Cast, l Calls) (Summary, error) {
	addrs := map[string][]string{}
	for actor, ws := range cast {
		for _, w := range ws {
			addrs[actor] = append(addrs[actor], w.Addr)
		}
	}
	r := &tally{clock: co.Clock, parts: len(sc.Actors), calls: map[int]*CallResult{}, held: map[string]map[string]arrival{}}
	// A worker's calls and then its done come on one channel, in the order
	// it sent them: no call is counted after the run is added up.
	in := make(chan *nats.Msg, 1<<16)
	for _, subject := range []string{wire.ScenarioCall(co.RunID), wire.ScenarioDone(co.RunID)} {
		sub, err := co.NC.ChanSubscribe(subject, in)
		if err != nil {
			return Summary{}, err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	barriers, err := co.NC.Subscribe(wire.ScenarioBarrier(co.RunID), r.barrier)
	if err != nil {
		return Summary{}, err
	}
	defer func() { _ = barriers.Unsubscribe() }()
	if err := co.NC.Flush(); err != nil {
		return Summary{}, err
	}
	begin := co.Clock.Now()
	working := map[string]bool{}
	for actor, ws := range cast {
		for i, w := range ws {
			job := Job{Run: co.RunID, File: file, Name: name, Actor: actor, Rate: l.Rate, Rows: l.Rows, Addrs: addrs,
				First: 1 + i, Step: len(ws), Calls: l.Calls, Concurrency: max(1, (l.Concurrency+len(ws)-1)/len(ws))}
			if len(job.numbers()) == 0 {
				continue
			}
			data, _ := json.Marshal(job)
			m, err := co.NC.RequestWithContext(ctx, wire.ScenarioWorker(w.ID), data)
			if err != nil {
				return Summary{}, fmt.Errorf("worker %s (actor %s): %w", w.ID, actor, err)
			}
			var rep jobReply
			if json.Unmarshal(m.Data, &rep) != nil || rep.Error != "" {
				return Summary{}, fmt.Errorf("worker %s (actor %s) refused its job: %s", w.ID, actor, orDefault(rep.Error, string(m.Data)))
			}
			working[w.ID] = true
		}
	}
	tick := co.Clock.NewTicker(time.Second)
	defer tick.Stop()
	for len(working) > 0 {
		select {
		case m := <-in:
			if m.Subject == wire.ScenarioDone(co.RunID) {
				delete(working, string(m.Data))
			} else {
				r.call(m)
			}
		case <-tick.Chan():
			fmt.Fprintln(co.Progress, r.progress(co.Clock.Since(begin), l.Calls))
			for id := range working {
				// A worker that is gone, or on to another run (its done lost),
				// reports nothing more of this one: its calls fail.
				m, err := co.NC.Request(wire.ScenarioWorker(id), nil, 2*time.Second)
				var live liveness
				switch {
				case errors.Is(err, nats.ErrNoResponders):
					fmt.Fprintf(co.Progress, "worker %s is gone: its calls that did not end failed\n", id)
					delete(working, id)
				case err == nil && (json.Unmarshal(m.Data, &live) != nil || live.Run != co.RunID):
					delete(working, id)
				}
			}
		case <-ctx.Done():
			return r.summary(co.Clock.Since(begin), l.Calls, true), ctx.Err()
		}
	}
	return r.summary(co.Clock.Since(begin), l.Calls, true), nil
}

// tally adds up a run's calls as the workers report them, and holds the
// barriers.
type tally struct {
	clock clockwork.Clock
	mu    sync.Mutex
	parts int // actors per call
	calls map[int]*CallResult
	got   map[int]int
	held  map[string]map[string]arrival // by meeting, by actor
}

// arrival is an actor waiting at a barrier, until its wait ends.
type arrival struct {
	m     *nats.Msg
	until time.Time
}

func (t *tally) call(m *nats.Msg) {
	var w wireCall
	if json.Unmarshal(m.Data, &w) != nil {
		return
	}
	c := w.result()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.got == nil {
		t.got = map[int]int{}
	}
	t.got[c.Call]++
	have := t.calls[c.Call]
	if have == nil {
		t.calls[c.Call] = &c
		return
	}
	have.Passed = have.Passed && c.Passed
	have.Steps = append(have.Steps, c.Steps...)
	have.SendTimes = append(have.SendTimes, c.SendTimes...)
	have.Elapsed = max(have.Elapsed, c.Elapsed)
}

// barrier holds an actor's arrival until every party of its meeting is
// there (one whose wait has ended is not), then answers them all.
func (t *tally) barrier(m *nats.Msg) {
	var mt Meeting
	if json.Unmarshal(m.Data, &mt) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	there := t.held[mt.key()]
	if there == nil {
		there = map[string]arrival{}
		t.held[mt.key()] = there
	}
	for actor, a := range there {
		if now.After(a.until) {
			delete(there, actor)
		}
	}
	there[mt.Actor] = arrival{m: m, until: now.Add(mt.Within)}
	if len(there) < mt.Parties {
		return
	}
	delete(t.held, mt.key())
	for _, a := range there {
		_ = a.m.Respond(nil)
	}
}

// summary is the run so far; final, a call not every actor reported (its
// worker gone) failed.
func (t *tally) summary(elapsed time.Duration, calls int, final bool) Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Elapsed: elapsed}
	for n := 1; n <= calls; n++ {
		have, ok := t.calls[n]
		var c CallResult
		switch {
		case !ok && !final:
			continue
		case !ok:
			c = CallResult{Call: n, Steps: []Result{{Step: Step{Type: "call"}, Got: "no actor reported it"}}}
		default:
			c = *have
			c.Steps = slices.Clone(have.Steps)
			if t.got[n] < t.parts {
				if !final {
					continue // the other actors' parts are still to come
				}
				c.Passed = false
				c.Steps = append(c.Steps, Result{Step: Step{Type: "call"}, Got: fmt.Sprintf("%d of %d actors reported", t.got[n], t.parts)})
			}
		}
		slices.SortStableFunc(c.Steps, func(a, b Result) int { return strings.Compare(a.Actor, b.Actor) })
		s.Calls = append(s.Calls, c)
		s.count(c)
	}
	return s
}

func (t *tally) progress(elapsed time.Duration, calls int) string {
	s := t.summary(elapsed, calls, false)
	return s.progress(len(s.Calls))
}

// Worker plays the actors a coordinator gives it, one job at a time.
type Worker struct {
	NC   *nats.Conn
	Info WorkerInfo
	// Runner is a runner of actor at the worker's edge.
	Runner func(actor string) *Runner
	Log    *slog.Logger
	mu     sync.Mutex
	run    string // the run it is on, or ""
}

// Serve answers roll calls and takes jobs until ctx ends.
func (w *Worker) Serve(ctx context.Context) error {
	roll, err := w.NC.Subscribe(wire.ScenarioWorkers, func(m *nats.Msg) {
		w.mu.Lock()
		busy := w.run != ""
		w.mu.Unlock()
		if !busy {
			data, _ := json.Marshal(w.Info)
			_ = m.Respond(data)
		}
	})
	if err != nil {
		return fmt.Errorf("scenario worker: %w", err)
	}
	defer func() { _ = roll.Unsubscribe() }()
	jobs, err := w.NC.Subscribe(wire.ScenarioWorker(w.Info.ID), func(m *nats.Msg) { w.take(ctx, m) })
	if err != nil {
		return fmt.Errorf("scenario worker: %w", err)
	}
	defer func() { _ = jobs.Unsubscribe() }()
	if err := w.NC.Flush(); err != nil {
		return fmt.Errorf("scenario worker: %w", err)
	}
	w.Log.Info("scenario worker waiting for a run", "id", w.Info.ID, "actor", w.Info.Actor, "addr", w.Info.Addr)
	<-ctx.Done()
	return nil
}

// take answers a job request (an empty one is a liveness check) and runs
// the job.
func (w *Worker) take(ctx context.Context, m *nats.Msg) {
	if len(m.Data) == 0 {
		w.mu.Lock()
		data, _ := json.Marshal(liveness{Run: w.run})
		w.mu.Unlock()
		_ = m.Respond(data)
		return
	}
	refuse := func(why string) {
		data, _ := json.Marshal(jobReply{Error: why})
		_ = m.Respond(data)
	}
	var job Job
	if err := json.Unmarshal(m.Data, &job); err != nil {
		refuse("not a job: " + err.Error())
		return
	}
	sc, err := ParseFile(job.Name, job.File)
	if err != nil {
		refuse(err.Error())
		return
	}
	if sc.Actor(job.Actor) == nil {
		refuse(fmt.Sprintf("the scenario has no actor %q", job.Actor))
		return
	}
	w.mu.Lock()
	if w.run != "" {
		w.mu.Unlock()
		refuse("busy with run " + w.run)
		return
	}
	w.run = job.Run
	w.mu.Unlock()
	_ = m.Respond([]byte("{}"))
	go func() {
		defer func() {
			w.mu.Lock()
			w.run = ""
			w.mu.Unlock()
		}()
		rn := w.Runner(job.Actor)
		rn.Barriers = &remoteBarriers{nc: w.NC, run: job.Run}
		numbers := job.numbers()
		w.Log.Info("scenario worker running", "run", job.Run, "actor", job.Actor, "calls", len(numbers))
		sum := rn.RunCalls(ctx, sc, Calls{Calls: len(numbers), Numbers: numbers, Rate: job.Rate, CallVars: job.vars,
			Concurrency: job.Concurrency, Rows: job.Rows, Done: func(c CallResult) {
				data, _ := json.Marshal(toWire(c))
				_ = w.NC.Publish(wire.ScenarioCall(job.Run), data)
			}}, io.Discard)
		_ = w.NC.Flush()
		_ = w.NC.Publish(wire.ScenarioDone(job.Run), []byte(w.Info.ID))
		w.Log.Info("scenario worker done", "run", job.Run, "actor", job.Actor, "passed", sum.Passed, "failed", sum.Failed)
	}()
}

// remoteBarriers meet at the coordinator.
type remoteBarriers struct {
	nc  *nats.Conn
	run string
}

func (b *remoteBarriers) Wait(ctx context.Context, m Meeting, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	data, _ := json.Marshal(m)
	if _, err := b.nc.RequestWithContext(ctx, wire.ScenarioBarrier(b.run), data); err != nil {
		return fmt.Errorf("barrier %s: not every actor came within %v (%v)", m.Barrier, within, err)
	}
	return nil
}
