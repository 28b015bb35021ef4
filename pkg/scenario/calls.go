package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Calls is how many calls a run makes of a scenario: Calls of them, started
// at Rate per second, at most Concurrency at once, each with its row of
// Rows (a CSV, like SIPp's -inf) as variables.
type Calls struct {
	Calls, Concurrency int
	Rate               float64
	Rows               []map[string]string
	// Numbers are the calls this run makes when not 1 to Calls: a worker's
	// share (`siphond --role scenario`), each started when it would be in
	// the whole run.
	Numbers []int
	// CallVars, when set, are more variables of call n.
	CallVars func(n int) map[string]string
	// Done, when set, gets each call's result as it ends.
	Done func(CallResult)
}

// CallResult is one call of a run: its steps' results (every actor's) and
// how long it took.
type CallResult struct {
	Call    int
	Passed  bool
	Steps   []Result
	Elapsed time.Duration
	// SendTimes are its send steps' response times.
	SendTimes []time.Duration
}

// Summary is a run's outcome.
type Summary struct {
	Calls   []CallResult
	Passed  int
	Failed  int
	Elapsed time.Duration
}

// RunCalls runs sc as l says, writing progress to progress once a second,
// and returns every call's result.
func (rn *Runner) RunCalls(ctx context.Context, sc *Scenario, l Calls, progress io.Writer) Summary {
	return RunCalls(ctx, sc, []*Runner{rn}, l, progress)
}

// RunCalls runs sc's calls as l says, each call every actor of cast side by
// side, writing progress once a second; it returns every call's result.
func RunCalls(ctx context.Context, sc *Scenario, cast []*Runner, l Calls, progress io.Writer) Summary {
	clock := cast[0].Clock
	numbers := l.Numbers
	if numbers == nil {
		for n := 1; n <= l.Calls; n++ {
			numbers = append(numbers, n)
		}
	}
	results := make([]CallResult, len(numbers))
	var mu sync.Mutex
	started := 0
	var sofar Summary
	slots := make(chan struct{}, max(1, l.Concurrency))
	var wg sync.WaitGroup
	begin := clock.Now()
	tick := clock.NewTicker(time.Second)
	defer tick.Stop()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.Chan():
				mu.Lock()
				sofar.Elapsed = clock.Since(begin)
				fmt.Fprintln(progress, sofar.progress(started))
				mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	interval := time.Duration(0)
	if l.Rate > 0 {
		interval = time.Duration(float64(time.Second) / l.Rate)
	}
	for i, n := range numbers {
		if interval > 0 && n > 1 {
			select {
			case <-clock.After(begin.Add(time.Duration(n-1) * interval).Sub(clock.Now())):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		mu.Lock()
		started++
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			vars := map[string]string{"call_number": strconv.Itoa(n)}
			if l.CallVars != nil {
				for k, v := range l.CallVars(n) {
					vars[k] = v
				}
			}
			if len(l.Rows) > 0 {
				for k, v := range l.Rows[(n-1)%len(l.Rows)] {
					vars[k] = v
				}
			}
			t0 := clock.Now()
			cr := CallResult{Call: n}
			cr.Passed = play(ctx, sc, cast, vars, func(r Result) {
				cr.Steps = append(cr.Steps, r)
				if r.Step.Type == "send" || r.Step.Type == "register" {
					cr.SendTimes = append(cr.SendTimes, r.Elapsed)
				}
			})
			cr.Elapsed = clock.Since(t0)
			mu.Lock()
			results[i] = cr
			sofar.add(cr)
			mu.Unlock()
			if l.Done != nil {
				l.Done(cr)
			}
		}()
	}
	wg.Wait()
	close(stop)
	sum := Summary{Elapsed: clock.Since(begin)}
	for _, c := range results[:started] {
		sum.Calls = append(sum.Calls, c)
		sum.count(c)
	}
	return sum
}

// Play runs every actor of sc once, side by side (barriers between them),
// handing each step's result to report (one at a time), and says whether
// every step held.
func Play(ctx context.Context, sc *Scenario, cast []*Runner, report func(Result)) bool {
	return play(ctx, sc, cast, map[string]string{"call_number": "1"}, report)
}

func play(ctx context.Context, sc *Scenario, cast []*Runner, vars map[string]string, report func(Result)) bool {
	if len(cast) == 1 {
		return cast[0].run(ctx, sc, vars, report)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	passed := make([]bool, len(cast))
	for i, rn := range cast {
		own := make(map[string]string, len(vars))
		for k, v := range vars {
			own[k] = v
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			passed[i] = rn.run(ctx, sc, own, func(r Result) {
				mu.Lock()
				defer mu.Unlock()
				report(r)
			})
		}()
	}
	wg.Wait()
	for _, ok := range passed {
		if !ok {
			return false
		}
	}
	return true
}

// add counts c into a summary of the calls so far.
func (s *Summary) add(c CallResult) {
	s.Calls = append(s.Calls, CallResult{Passed: c.Passed, SendTimes: c.SendTimes})
	s.count(c)
}

func (s *Summary) count(c CallResult) {
	if c.Passed {
		s.Passed++
	} else {
		s.Failed++
	}
}

// progress is the line a run prints each second.
func (s Summary) progress(started int) string {
	p50, _, p99, _ := s.Percentiles()
	return fmt.Sprintf("calls: %d started, %d passed, %d failed, %.1f/s; send p50 %v p99 %v", started, s.Passed, s.Failed,
		float64(s.Passed+s.Failed)/max(s.Elapsed.Seconds(), 0.001), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
}

// Percentiles are the send steps' response times at p50, p90, p99 and the most.
func (s Summary) Percentiles() (p50, p90, p99, most time.Duration) {
	var all []time.Duration
	for _, c := range s.Calls {
		all = append(all, c.SendTimes...)
	}
	if len(all) == 0 {
		return 0, 0, 0, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	at := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return at(.50), at(.90), at(.99), all[len(all)-1]
}

func (s Summary) String() string {
	p50, p90, p99, most := s.Percentiles()
	rate := float64(len(s.Calls)) / max(s.Elapsed.Seconds(), 0.001)
	return fmt.Sprintf("calls: %d, %d passed, %d failed in %v (%.1f/s); send response times p50 %v p90 %v p99 %v max %v",
		len(s.Calls), s.Passed, s.Failed, s.Elapsed.Round(time.Millisecond), rate,
		p50.Round(time.Microsecond), p90.Round(time.Microsecond), p99.Round(time.Microsecond), most.Round(time.Microsecond))
}

// WriteReport writes s to path: JUnit XML for .xml (one test case per call,
// a failure naming its first failed step), JSON otherwise.
func (s Summary) WriteReport(path, name string) error {
	var data []byte
	var err error
	if strings.HasSuffix(path, ".xml") {
		type failure struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		}
		type testcase struct {
			Name    string   `xml:"name,attr"`
			Time    string   `xml:"time,attr"`
			Failure *failure `xml:"failure,omitempty"`
		}
		type testsuite struct {
			XMLName  xml.Name   `xml:"testsuite"`
			Name     string     `xml:"name,attr"`
			Tests    int        `xml:"tests,attr"`
			Failures int        `xml:"failures,attr"`
			Time     string     `xml:"time,attr"`
			Cases    []testcase `xml:"testcase"`
		}
		ts := testsuite{Name: name, Tests: len(s.Calls), Failures: s.Failed, Time: secs(s.Elapsed)}
		for _, c := range s.Calls {
			tc := testcase{Name: "call " + strconv.Itoa(c.Call), Time: secs(c.Elapsed)}
			if !c.Passed {
				var lines []string
				for _, r := range c.Steps {
					lines = append(lines, r.String())
				}
				tc.Failure = &failure{Message: firstFailure(c), Text: strings.Join(lines, "\n")}
			}
			ts.Cases = append(ts.Cases, tc)
		}
		data, err = xml.MarshalIndent(ts, "", "  ")
		data = append([]byte(xml.Header), data...)
	} else {
		type step struct {
			Actor  string `json:"actor,omitempty"`
			Step   int    `json:"step"`
			Type   string `json:"type"`
			Result string `json:"result"` // PASS or FAIL, as voip_patrol
			Detail string `json:"detail"`
		}
		type call struct {
			Call    int     `json:"call"`
			Result  string  `json:"result"`
			Seconds float64 `json:"seconds"`
			Steps   []step  `json:"steps"`
		}
		out := struct {
			Scenario string `json:"scenario"`
			Calls    int    `json:"calls"`
			Passed   int    `json:"passed"`
			Failed   int    `json:"failed"`
			Results  []call `json:"results"`
		}{Scenario: name, Calls: len(s.Calls), Passed: s.Passed, Failed: s.Failed}
		for _, c := range s.Calls {
			cj := call{Call: c.Call, Result: verdict(c.Passed), Seconds: c.Elapsed.Seconds()}
			for _, r := range c.Steps {
				cj.Steps = append(cj.Steps, step{Actor: r.Actor, Step: r.Index + 1, Type: r.Step.Type, Result: verdict(r.OK), Detail: r.String()})
			}
			out.Results = append(out.Results, cj)
		}
		data, err = json.MarshalIndent(out, "", "  ")
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

func firstFailure(c CallResult) string {
	for _, r := range c.Steps {
		if !r.OK {
			return r.String()
		}
	}
	return "failed"
}

// ReadRows reads a CSV of variables, one row per call: a header line names
// them, ";" or "," separates fields (SIPp's SEQUENTIAL/RANDOM first line is
// skipped).
func ReadRows(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--inf: %w", err)
	}
	defer f.Close()
	var names []string
	var rows []map[string]string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || line == "SEQUENTIAL" || line == "RANDOM" {
			continue
		}
		sep := ";"
		if !strings.Contains(line, ";") {
			sep = ","
		}
		fields := strings.Split(line, sep)
		if names == nil {
			for _, f := range fields {
				if !validName.MatchString(strings.TrimSpace(f)) {
					return nil, fmt.Errorf("--inf %s: line %d: the header names the variables: %q is not a name", path, n, f)
				}
				names = append(names, strings.TrimSpace(f))
			}
			continue
		}
		if len(fields) != len(names) {
			return nil, fmt.Errorf("--inf %s: line %d: %d fields, the header names %d", path, n, len(fields), len(names))
		}
		row := map[string]string{}
		for i, f := range fields {
			row[names[i]] = strings.TrimSpace(f)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--inf %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, errors.New("--inf " + path + ": no rows")
	}
	return rows, nil
}
