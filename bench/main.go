// Command bench drives siphond with SIPp at rising rates and reports, per set-up,
// the highest rate with no failed call, SIPp's response-time percentiles, and the
// CPU time per request summed over every process of the set-up (SIPp excluded).
//
// Every load step is bounded in calls and time and aims only at 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	siphond := flag.String("siphond", "bin/siphond", "siphond binary")
	scenario := flag.String("scenario", "bench/sipp/options.xml", "SIPp scenario")
	rates := flag.String("rates", "2000,4000,6000,8000,10000,12000", "call rates to try, ascending")
	duration := flag.Duration("duration", 10*time.Second, "length of each rate step")
	setups := flag.String("setups", "embedded,multi", "set-ups to measure: embedded, multi")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	flag.Parse()
	if err := run(*siphond, *scenario, *rates, *setups, *duration, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(siphond, scenario, rateList, setupList string, duration time.Duration, out string) error {
	var steps []int
	for _, r := range strings.Split(rateList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("--rates: bad rate %q", r)
		}
		steps = append(steps, n)
	}
	scenario, _ = filepath.Abs(scenario)
	siphond, _ = filepath.Abs(siphond)
	report := &strings.Builder{}
	fmt.Fprintf(report, "Machine: %s, %d cores; %s; %s; SIPp %s on the same machine.\n\n",
		cpuModel(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion(), sippVersion())
	for _, name := range strings.Split(setupList, ",") {
		fmt.Fprintf(os.Stderr, "== set-up %s\n", name)
		s, err := startSetup(name, siphond)
		if err != nil {
			return err
		}
		results, err := measure(s, scenario, steps, duration)
		s.stop()
		if err != nil {
			return err
		}
		writeTable(report, name, s.describe, results)
	}
	fmt.Print(report.String())
	if out != "" {
		return os.WriteFile(out, []byte(report.String()), 0o644)
	}
	return nil
}

// setup is a running siphond arrangement.
type setup struct {
	describe string
	sip      string
	procs    []*exec.Cmd
}

func (s *setup) stop() {
	for _, p := range s.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
}

func startSetup(name, siphond string) (*setup, error) {
	sipAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	common := []string{"--mode", "minimal", "--log-level", "warn"}
	s := &setup{sip: sipAddr}
	spawn := func(bin string, args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		s.procs = append(s.procs, cmd)
		return cmd, nil
	}
	var ready []string
	switch name {
	case "embedded":
		s.describe = "one siphond process (edge + uas, embedded NATS, in-memory state)"
		m := fmt.Sprintf("127.0.0.1:%d", freePort())
		if _, err := spawn(siphond, append(common, "--udp-bind", sipAddr, "--tcp-bind", "", "--metrics-bind", m)...); err != nil {
			return nil, err
		}
		ready = append(ready, m)
	case "multi":
		s.describe = "nats-server + siphond --role edge + siphond --role uas, three processes"
		natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
		host, port, _ := net.SplitHostPort(natsAddr)
		if _, err := spawn("nats-server", "-a", host, "-p", port); err != nil {
			return nil, fmt.Errorf("nats-server (apt-get install nats-server): %w", err)
		}
		waitTCP(natsAddr)
		me, mu := fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())
		if _, err := spawn(siphond, append(common, "--role", "edge", "--nats", "nats://"+natsAddr, "--udp-bind", sipAddr, "--tcp-bind", "", "--metrics-bind", me)...); err != nil {
			return nil, err
		}
		if _, err := spawn(siphond, append(common, "--role", "uas", "--nats", "nats://"+natsAddr, "--metrics-bind", mu)...); err != nil {
			return nil, err
		}
		ready = append(ready, me, mu)
	default:
		return nil, fmt.Errorf("unknown set-up %q (want embedded or multi)", name)
	}
	for _, m := range ready {
		if err := waitReady(m); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// result is one rate step.
type result struct {
	target, successful, failed int
	achieved                   float64
	p50, p90, p99, max         float64 // ms
	cpuPerReq                  float64 // µs
}

func measure(s *setup, scenario string, steps []int, duration time.Duration) ([]result, error) {
	// Warm-up: connections, caches, the Go runtime's heap.
	if _, err := sipp(scenario, s.sip, 1000, 2*time.Second); err != nil {
		return nil, err
	}
	var results []result
	for _, rate := range steps {
		cpu0 := cpuSeconds(s.procs)
		r, err := sipp(scenario, s.sip, rate, duration)
		if err != nil {
			return nil, err
		}
		if r.successful > 0 {
			r.cpuPerReq = (cpuSeconds(s.procs) - cpu0) / float64(r.successful) * 1e6
		}
		fmt.Fprintf(os.Stderr, "   rate %6d: achieved %8.1f/s, %d ok, %d failed, p50 %.2f p99 %.2f ms, %.1f µs CPU/req\n",
			rate, r.achieved, r.successful, r.failed, r.p50, r.p99, r.cpuPerReq)
		results = append(results, r)
		if r.failed > 0 {
			break // past the knee: higher rates only fail more
		}
	}
	return results, nil
}

var sippCount = regexp.MustCompile(`(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)`)

// sipp runs one bounded step: rate calls per second for duration.
func sipp(scenario, target string, rate int, duration time.Duration) (result, error) {
	calls := rate * int(duration/time.Second)
	dir, err := os.MkdirTemp("", "bench-sipp")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), duration*3+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", "-sf", scenario, "-t", "u1", "-i", "127.0.0.1", "-p", strconv.Itoa(freePort()),
		"-s", "siphond", "-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-rp", "1000",
		"-buff_size", "4194304", "-nostdin", "-timeout", (duration*2 + 10*time.Second).String(),
		"-trace_rtt", "-rtt_freq", "1000", target)
	cmd.Dir = dir
	outb, _ := cmd.CombinedOutput()
	outs := string(outb)
	var r result
	for _, m := range sippCount.FindAllStringSubmatch(outs, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			r.successful = n
		} else {
			r.failed = n
		}
	}
	if r.successful+r.failed == 0 {
		return r, fmt.Errorf("SIPp reported no calls:\n%s", tail(outs, 2000))
	}
	rtts, span, err := readRTT(dir)
	if err != nil {
		return r, err
	}
	if span > 0 {
		r.achieved = float64(r.successful) / span.Seconds()
	}
	r.p50, r.p90, r.p99, r.max = pct(rtts, .50), pct(rtts, .90), pct(rtts, .99), pct(rtts, 1)
	r.target = rate
	if r.successful < calls {
		r.failed += calls - r.successful - r.failed
	}
	return r, nil
}

// readRTT reads SIPp's -trace_rtt file (Date_ms;response_time_ms;rtd_no): the
// sorted response times, and the span from first to last answer. SIPp reads a
// coarse clock (4 ms steps here), so times are multiples of that.
func readRTT(dir string) ([]float64, time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("SIPp wrote no rtt file in %s", dir)
	}
	f, err := os.Open(files[0])
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var out []float64
	first, last := -1.0, 0.0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), ";")
		if len(cols) < 2 {
			continue
		}
		at, err1 := strconv.ParseFloat(cols[0], 64)
		v, err2 := strconv.ParseFloat(cols[1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if first < 0 {
			first = at
		}
		last = at
		out = append(out, v)
	}
	sort.Float64s(out)
	return out, time.Duration((last - first) * float64(time.Millisecond)), nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func writeTable(w io.Writer, name, describe string, rs []result) {
	best, bestFast := 0, 0
	for _, r := range rs {
		if r.failed == 0 {
			best = r.target
			if r.p99 <= 12 {
				bestFast = r.target
			}
		}
	}
	fmt.Fprintf(w, "### %s: %s\n\nHighest rate with no failed call: **%d OPTIONS/s**; highest with no failed call and p99 <= 12 ms: **%d OPTIONS/s**.\n\n",
		name, describe, best, bestFast)
	fmt.Fprintln(w, "| target/s | achieved/s | ok | failed | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req (all processes) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %.0f | %d | %d | %.2f | %.2f | %.2f | %.2f | %.1f |\n",
			r.target, r.achieved, r.successful, r.failed, r.p50, r.p90, r.p99, r.max, r.cpuPerReq)
	}
	fmt.Fprintln(w)
}

// cpuSeconds sums user+system CPU of the processes from /proc.
func cpuSeconds(procs []*exec.Cmd) float64 {
	var ticks float64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		ticks += u + s
	}
	return ticks / 100 // USER_HZ
}

func freePort() int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
}

func waitTCP(addr string) {
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitReady(metrics string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + metrics + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("siphond at %s not ready in 20s", metrics)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func goVersion() string { return runtime.Version() }

func sippVersion() string {
	out, _ := exec.Command("sipp", "-v").CombinedOutput()
	if m := regexp.MustCompile(`v[0-9.]+`).Find(out); m != nil {
		return string(m)
	}
	return "?"
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
