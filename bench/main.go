// Command bench drives siphond with SIPp at rising rates and reports, per set-up,
// the highest rate with no failed call, SIPp's response-time percentiles, and the
// CPU time per request summed over every process of the set-up (SIPp excluded).
//
// Every load step is bounded in calls and time and aims only at 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"errors"
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
	"syscall"
	"time"
)

// params is one benchmark run.
type params struct {
	siphond, sippDir, kamailioCfg string
	mode                          string // minimal (OPTIONS), registrar (REGISTER), calls (INVITE-ACK-BYE), proxy (calls through to a registered SIPp) or subscribe (SUBSCRIBE-NOTIFY-unsubscribe-NOTIFY)
	auth                          bool
	users                         int
	work                          string // scratch directory: users files
	callLength                    time.Duration
	watchers, held                int           // subscribe: the fan-out's watchers; subscriptions held for the memory figure
	floodRate                     int           // flood: the flooding source's rate
	soakIdle                      time.Duration // soak: how long the idle phase samples
}

func main() {
	var p params
	flag.StringVar(&p.siphond, "siphond", "bin/siphond", "siphond binary")
	flag.StringVar(&p.sippDir, "sipp", "bench/sipp", "directory of the SIPp scenarios")
	flag.StringVar(&p.kamailioCfg, "kamailio", "bench/kamailio", "directory of the Kamailio configurations (registrar.cfg, proxy.cfg)")
	flag.StringVar(&p.mode, "mode", "minimal", "minimal (OPTIONS), registrar (REGISTER), calls (INVITE-ACK-BYE against call-server), proxy (calls through the proxy to a registered SIPp uas), b2bua (the same calls through the b2bua; set-up proxy compares), runner (siphond run as the caller, set-ups siphond-run and sipp-uac, against SIPp's uas), soak (calls at the first --rates for --duration, then --soak-idle, RSS sampled), flood (a source at 50 OPTIONS/s alone, then while another floods at --flood-rate, against the default per-source limit) or subscribe (presence SUBSCRIBE, NOTIFY, unsubscribe against subscription-server; then a PUBLISH fanned out and held subscriptions' memory)")
	flag.IntVar(&p.watchers, "watchers", 1000, "subscribe: watchers of the one resource a PUBLISH fans out to")
	flag.DurationVar(&p.soakIdle, "soak-idle", time.Minute, "soak: how long it samples after the load (the rate is the first of --rates, the load lasts --duration)")
	flag.IntVar(&p.floodRate, "flood-rate", 24000, "flood: OPTIONS a second from the flooding source (twice what the embedded edge holds)")
	flag.IntVar(&p.held, "held", 100000, "subscribe: subscriptions held to measure memory per subscription")
	flag.DurationVar(&p.callLength, "call-length", 500*time.Millisecond, "calls: how long each call lasts between ACK and BYE")
	flag.BoolVar(&p.auth, "auth", false, "registrar: digest authentication on (each registration is 401 then 200)")
	flag.IntVar(&p.users, "users", 150000, "registrar: distinct users in the SIPp CSV")
	rates := flag.String("rates", "2000,4000,6000,8000,10000,12000", "call rates to try, ascending")
	duration := flag.Duration("duration", 10*time.Second, "length of each rate step")
	setups := flag.String("setups", "embedded,multi", "set-ups to measure: embedded, multi, kamailio (registrar and proxy modes), sipp-uas (calls mode: SIPp's own uas, the tool's ceiling), proxy (b2bua mode: siphond's proxy with the same load)")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	flag.Parse()
	if err := run(p, *rates, *setups, *duration, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(p params, rateList, setupList string, duration time.Duration, out string) error {
	var steps []int
	for _, r := range strings.Split(rateList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("--rates: bad rate %q", r)
		}
		steps = append(steps, n)
	}
	p.siphond, _ = filepath.Abs(p.siphond)
	p.sippDir, _ = filepath.Abs(p.sippDir)
	p.kamailioCfg, _ = filepath.Abs(p.kamailioCfg)
	var err error
	if p.work, err = os.MkdirTemp("", "bench"); err != nil {
		return err
	}
	defer os.RemoveAll(p.work)
	report := &strings.Builder{}
	// publish prints the report and writes it to out.
	publish := func() error {
		fmt.Print(report.String())
		if out != "" {
			return os.WriteFile(out, []byte(report.String()), 0o644)
		}
		return nil
	}
	switch p.mode {
	case "soak":
		if err := p.soakRun(report, steps[0], duration, p.soakIdle); err != nil {
			return err
		}
		return publish()
	case "flood":
		if err := p.floodRun(report, duration); err != nil {
			return err
		}
		return publish()
	case "runner":
		fmt.Fprintf(report, "Machine: %s, %d cores; %s; %s; SIPp %s on the same machine. Load: the callers themselves, INVITE-200-ACK-BYE-200 against SIPp's uas.\n\n",
			cpuModel(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion(), sippVersion())
		all, order, err := p.runnerSetups(report, setupList, steps, duration)
		if err != nil {
			return err
		}
		if rs, ok := all["sipp-uac"]; ok {
			writeRatios(report, order, all, "sipp-uac", rs)
		}
		return publish()
	}
	load, err := p.load()
	if err != nil {
		return err
	}
	fmt.Fprintf(report, "Machine: %s, %d cores; %s; %s; SIPp %s on the same machine. Load: %s.\n\n",
		cpuModel(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion(), sippVersion(), load.describe)
	all := map[string][]result{}
	var order []string
	for _, name := range strings.Split(setupList, ",") {
		fmt.Fprintf(os.Stderr, "== set-up %s\n", name)
		s, err := p.startSetup(name)
		if err != nil {
			return err
		}
		results, err := measure(s, load, steps, duration)
		s.stop()
		if err != nil {
			return err
		}
		if p.mode == "subscribe" {
			// On a set-up of their own: what the rate steps left (a backlog,
			// transactions lingering) must not count as the subscriptions'.
			if s, err = p.startSetup(name); err != nil {
				return err
			}
			err = p.measureEvents(s)
			s.stop()
			if err != nil {
				return err
			}
		}
		writeTable(report, name, s.describe, load.unit, results)
		if s.events != "" {
			report.WriteString(s.events)
		}
		all[name] = results
		order = append(order, name)
	}
	for _, ref := range []string{"kamailio", "sipp-uas", "proxy", "embedded"} {
		if ref == "embedded" && all["limited"] == nil {
			continue // the limiter's cost is its set-up against embedded
		}
		if rs, ok := all[ref]; ok {
			writeRatios(report, order, all, ref, rs)
		}
	}
	return publish()
}

// loadSpec is what SIPp sends.
type loadSpec struct {
	scenario string
	args     []string // extra SIPp arguments (-inf users.csv)
	unit     string   // what one call is
	describe string
	users    string // siphond --auth-users file, registrar with auth
}

func (p params) load() (loadSpec, error) {
	switch p.mode {
	case "minimal":
		return loadSpec{scenario: filepath.Join(p.sippDir, "options.xml"), unit: "OPTIONS", describe: "SIPp OPTIONS"}, nil
	case "calls":
		return loadSpec{scenario: filepath.Join(p.sippDir, "call.xml"), unit: "call",
			args:     []string{"-d", strconv.Itoa(int(p.callLength.Milliseconds()))},
			describe: fmt.Sprintf("SIPp calls: INVITE with SDP, 100/180/200, ACK, %v, BYE (response time: INVITE to 200)", p.callLength)}, nil
	case "proxy":
		return loadSpec{scenario: filepath.Join(p.sippDir, "proxy-uac.xml"), unit: "call",
			args: []string{"-d", strconv.Itoa(int(p.callLength.Milliseconds()))},
			describe: fmt.Sprintf("SIPp calls to sip:siphond@example.com through the proxy to a registered SIPp uas (bench/sipp/proxy-uas.xml, "+
				"Record-Route echoed, no 180): INVITE with SDP, 100/200, ACK and BYE along the route set, %v calls (response time: INVITE to 200)", p.callLength)}, nil
	case "b2bua":
		return loadSpec{scenario: filepath.Join(p.sippDir, "proxy-uac.xml"), unit: "call",
			args: []string{"-d", strconv.Itoa(int(p.callLength.Milliseconds()))},
			describe: fmt.Sprintf("SIPp calls to sip:siphond@example.com through the b2bua (proxy set-up: through the proxy) to a registered SIPp uas "+
				"(bench/sipp/b2bua-uas.xml, or proxy-uas.xml behind the proxy; no 180): INVITE with SDP, 100/200, ACK, BYE, %v calls (response time: INVITE to 200)", p.callLength)}, nil
	case "subscribe":
		return loadSpec{scenario: filepath.Join(p.sippDir, "subscribe.xml"), unit: "subscription",
			describe: "SIPp watchers of sip:siphond@example.com's presence (bench/sipp/subscribe.xml): SUBSCRIBE, 200 and NOTIFY (PIDF) answered, " +
				"then unsubscribe (Expires: 0), 200 and the terminated NOTIFY answered (response time: SUBSCRIBE to 200)"}, nil
	case "registrar":
	default:
		return loadSpec{}, fmt.Errorf("--mode %q: want minimal, registrar, calls, proxy, b2bua or subscribe", p.mode)
	}
	csv := filepath.Join(p.work, "users.csv")
	users := filepath.Join(p.work, "users.json")
	var c, j strings.Builder
	c.WriteString("SEQUENTIAL\n")
	j.WriteString("{")
	for i := range p.users {
		u := fmt.Sprintf("user%06d", i)
		fmt.Fprintf(&c, "%s;[authentication username=%s password=pw]\n", u, u)
		if i > 0 {
			j.WriteString(",")
		}
		fmt.Fprintf(&j, "%q:%q", u, "pw")
	}
	j.WriteString("}")
	if err := os.WriteFile(csv, []byte(c.String()), 0o644); err != nil {
		return loadSpec{}, err
	}
	if err := os.WriteFile(users, []byte(j.String()), 0o644); err != nil {
		return loadSpec{}, err
	}
	l := loadSpec{args: []string{"-inf", csv}, users: users}
	if p.auth {
		l.scenario, l.unit = filepath.Join(p.sippDir, "register-auth.xml"), "registration"
		l.describe = fmt.Sprintf("SIPp REGISTER with digest (401, then 200: two REGISTERs per registration), %d distinct users, MD5", p.users)
	} else {
		l.scenario, l.unit = filepath.Join(p.sippDir, "register.xml"), "REGISTER"
		l.describe = fmt.Sprintf("SIPp REGISTER, no auth, %d distinct users", p.users)
	}
	return l, nil
}

// setup is a running arrangement of processes.
type setup struct {
	describe string
	sip      string
	procs    []*exec.Cmd
	// peers run beside the set-up (the callee behind a proxy): stopped with
	// it, their CPU not counted.
	peers []*exec.Cmd
	// redis is the set-up's Redis (multi) and metrics its siphond's
	// metrics address (embedded), for their memory figures.
	redis, metrics string
	// events is the subscribe mode's fan-out and memory report.
	events string
}

// stop kills every process of the set-up with its children: each runs in its
// own process group, because Kamailio's workers outlive a killed main process.
func (s *setup) stop() {
	for _, p := range append(s.procs, s.peers...) {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		_ = p.Wait()
	}
}

func (p params) startSetup(name string) (*setup, error) { return p.startSetupWith(name, nil) }

// startSetupWith is startSetup with extra siphond flags, which win over its own.
func (p params) startSetupWith(name string, extra []string) (*setup, error) {
	sipAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	siphondMode := p.mode
	switch p.mode {
	case "calls":
		siphondMode = "call-server"
	case "b2bua":
		if name == "proxy" {
			siphondMode = "proxy" // the proxy beside the b2bua, same load and callee
		}
	case "subscribe":
		siphondMode = "subscription-server"
	}
	// Every SIPp of a benchmark sends from 127.0.0.1: no per-source limit
	// (the limiter's own figures are measured with it on).
	common := []string{"--mode", siphondMode, "--log-level", "warn", "--udp-rate-limit", "0", "--stream-rate-limit", "0"}
	if p.mode == "proxy" || siphondMode == "proxy" {
		common = append(common, "--domain", "example.com")
	}
	if p.mode == "registrar" && p.auth {
		common = append(common, "--auth", "--auth-users", filepath.Join(p.work, "users.json"), "--auth-max-failures", "1000000")
	}
	common = append(common, extra...)
	s := &setup{sip: sipAddr}
	spawn := func(bin string, args ...string) error {
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", bin, err)
		}
		s.procs = append(s.procs, cmd)
		return nil
	}
	var ready []string
	switch name {
	case "embedded", "proxy", "limited":
		s.describe = "one siphond process (edge + roles, embedded NATS, in-memory state)"
		if name == "limited" {
			// The limiter on at a rate no step reaches: every request pays
			// for its source's bucket and none is refused.
			common = append(common, "--udp-rate-limit", "1000000000")
			s.describe += ", the per-source limiter on (a limit no step reaches)"
		}
		if name == "proxy" {
			if p.mode != "b2bua" {
				return nil, errors.New("the proxy set-up is the b2bua's comparison: use --mode b2bua")
			}
			s.describe = "one siphond --mode proxy process (edge + roles, embedded NATS, in-memory state), the same callee"
		}
		m := fmt.Sprintf("127.0.0.1:%d", freePort())
		if err := spawn(p.siphond, append(common, "--udp-bind", sipAddr, "--tcp-bind", "", "--metrics-bind", m)...); err != nil {
			return nil, err
		}
		ready = append(ready, m)
		s.metrics = m
	case "multi":
		natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
		host, port, _ := net.SplitHostPort(natsAddr)
		if err := spawn("nats-server", "-a", host, "-p", port); err != nil {
			return nil, fmt.Errorf("%w (apt-get install nats-server)", err)
		}
		waitTCP(natsAddr)
		roles, shared := []string{"uas"}, []string{"--nats", "nats://" + natsAddr}
		s.describe = "nats-server + siphond --role edge + siphond --role uas"
		if p.mode == "registrar" || p.mode == "calls" || p.mode == "proxy" || p.mode == "subscribe" || p.mode == "b2bua" {
			redisAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
			_, rport, _ := net.SplitHostPort(redisAddr)
			if err := spawn("redis-server", "--bind", "127.0.0.1", "--port", rport, "--save", "", "--appendonly", "no", "--dir", p.work); err != nil {
				return nil, fmt.Errorf("%w (apt-get install redis-server)", err)
			}
			waitTCP(redisAddr)
			shared = append(shared, "--redis", "redis://"+redisAddr+"/0")
			s.redis = redisAddr
			switch p.mode {
			case "registrar":
				roles = []string{"registrar"}
			case "proxy":
				roles = []string{"registrar", "proxy"}
			case "subscribe":
				roles = []string{"events"}
			case "b2bua":
				roles = []string{"registrar", "b2bua"}
			}
			s.describe = "nats-server + redis-server + siphond --role edge"
			for _, r := range roles {
				s.describe += " + siphond --role " + r
			}
		}
		me := fmt.Sprintf("127.0.0.1:%d", freePort())
		if err := spawn(p.siphond, append(append(common, shared...), "--role", "edge", "--udp-bind", sipAddr, "--tcp-bind", "", "--metrics-bind", me)...); err != nil {
			return nil, err
		}
		ready = append(ready, me)
		for _, r := range roles {
			mr := fmt.Sprintf("127.0.0.1:%d", freePort())
			if err := spawn(p.siphond, append(append(common, shared...), "--role", r, "--metrics-bind", mr)...); err != nil {
				return nil, err
			}
			ready = append(ready, mr)
		}
	case "kamailio":
		cfg := "registrar.cfg"
		switch p.mode {
		case "registrar":
		case "proxy":
			cfg = "proxy.cfg"
		default:
			return nil, errors.New("the kamailio set-up is a registrar or a proxy: use --mode registrar or --mode proxy")
		}
		args := []string{"-DD", "-E", "-f", filepath.Join(p.kamailioCfg, cfg), "-l", "udp:" + sipAddr, "-n", strconv.Itoa(runtime.NumCPU()),
			"-w", p.work, "-P", filepath.Join(p.work, "kamailio.pid"), "-m", "512", "-M", "32"}
		if p.auth {
			args = append(args, "-A", "WITH_AUTH")
		}
		if err := spawn("kamailio", args...); err != nil {
			return nil, fmt.Errorf("%w (apt-get install kamailio)", err)
		}
		s.describe = fmt.Sprintf("Kamailio %s, usrloc in memory (bench/kamailio/%s), %d children", kamailioVersion(), cfg, runtime.NumCPU())
		if err := waitSIP(sipAddr); err != nil {
			s.stop()
			return nil, err
		}
	case "sipp-uas":
		if p.mode != "calls" {
			return nil, errors.New("the sipp-uas set-up answers calls: use --mode calls")
		}
		host, port, _ := net.SplitHostPort(sipAddr)
		dir, err := os.MkdirTemp(p.work, "sipp-uas")
		if err != nil {
			return nil, err
		}
		if err := spawn("sipp", "-sn", "uas", "-i", host, "-p", port, "-nostdin", "-buff_size", "4194304",
			"-trace_err", "-error_file", filepath.Join(dir, "errors.log")); err != nil {
			return nil, err
		}
		s.describe = "SIPp " + sippVersion() + " -sn uas (180, 200, BYE answered): the ceiling of the tool on this machine"
		if err := waitBound(sipAddr); err != nil {
			s.stop()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown set-up %q (want embedded, multi, kamailio or sipp-uas)", name)
	}
	for _, m := range ready {
		if err := waitReady(m); err != nil {
			s.stop()
			return nil, err
		}
	}
	if p.mode == "proxy" || p.mode == "b2bua" {
		callee := "proxy-uas.xml"
		if p.mode == "b2bua" && name != "proxy" {
			callee = "b2bua-uas.xml"
		}
		if err := p.startCallee(s, callee); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// startCallee registers sip:siphond@example.com at a SIPp uas of its own and
// starts that uas: every call of the load goes through the proxy to it.
func (p params) startCallee(s *setup, scenario string) error {
	port := strconv.Itoa(freePort())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := exec.CommandContext(ctx, "sipp", "-sf", filepath.Join(p.sippDir, "proxy-register.xml"), "-s", "siphond", "-m", "1",
		"-i", "127.0.0.1", "-p", port, "-nostdin", "-timeout", "10s", "-timeout_error", s.sip)
	reg.Dir = p.work
	if out, err := reg.CombinedOutput(); err != nil {
		return fmt.Errorf("register the callee: %w\n%s", err, tail(string(out), 1500))
	}
	cmd := exec.Command("sipp", "-sf", filepath.Join(p.sippDir, scenario), "-i", "127.0.0.1", "-p", port,
		"-nostdin", "-buff_size", "4194304")
	cmd.Dir = p.work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the callee: %w", err)
	}
	s.peers = append(s.peers, cmd)
	s.describe += "; callee: SIPp " + sippVersion() + " bench/sipp/" + scenario + " (not counted)"
	return waitBound("127.0.0.1:" + port)
}

// result is one rate step.
type result struct {
	target, successful, failed int
	achieved                   float64
	p50, p90, p99, max         float64 // ms
	cpuPerReq                  float64 // µs
}

// held: every call succeeded and SIPp kept the rate (a system that falls
// behind makes SIPp queue calls rather than fail them).
func (r result) held() bool { return r.failed == 0 && r.achieved >= 0.95*float64(r.target) }

func measure(s *setup, load loadSpec, steps []int, duration time.Duration) ([]result, error) {
	// Warm-up: connections, caches, the Go runtime's heap.
	if _, err := sipp(load, s.sip, 1000, 2*time.Second); err != nil {
		return nil, err
	}
	var results []result
	for _, rate := range steps {
		cpu0 := treeCPU(s.procs)
		r, err := sipp(load, s.sip, rate, duration)
		if err != nil {
			return nil, err
		}
		if r.successful > 0 {
			r.cpuPerReq = (treeCPU(s.procs) - cpu0) / float64(r.successful) * 1e6
		}
		fmt.Fprintf(os.Stderr, "   rate %6d: achieved %8.1f/s, %d ok, %d failed, p50 %.2f p99 %.2f ms, %.1f µs CPU/%s\n",
			rate, r.achieved, r.successful, r.failed, r.p50, r.p99, r.cpuPerReq, load.unit)
		results = append(results, r)
		if !r.held() {
			break // past the knee: higher rates only fail more
		}
	}
	return results, nil
}

var sippCount = regexp.MustCompile(`(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)`)

// sipp runs one bounded step: rate calls per second for duration.
func sipp(load loadSpec, target string, rate int, duration time.Duration) (result, error) {
	calls := rate * int(duration/time.Second)
	dir, err := os.MkdirTemp("", "bench-sipp")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), duration*3+30*time.Second)
	defer cancel()
	args := append([]string{"-sf", load.scenario, "-t", "u1", "-i", "127.0.0.1", "-p", strconv.Itoa(freePort()),
		"-s", "siphond", "-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-rp", "1000",
		"-buff_size", "4194304", "-nostdin", "-timeout", fmt.Sprintf("%ds", int((duration*2 + 10*time.Second).Seconds())), // SIPp takes seconds, not "6m10s"
		"-trace_rtt", "-rtt_freq", "1000"}, load.args...)
	cmd := exec.CommandContext(ctx, "sipp", append(args, target)...)
	cmd.Dir = dir
	outb, runErr := cmd.CombinedOutput()
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
		return r, fmt.Errorf("SIPp reported no calls (%v):\n%s", runErr, tail(outs, 2000))
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

func writeTable(w io.Writer, name, describe, unit string, rs []result) {
	best := 0
	var fast []string
	for _, r := range rs {
		if r.held() {
			best = r.target
			if r.p99 <= 12 {
				fast = append(fast, strconv.Itoa(r.target))
			}
		}
	}
	fmt.Fprintf(w, "### %s: %s\n\nHighest rate held (no failed call, at least 95 %% of the target rate): **%d %s/s**; steps held with p99 <= 12 ms: %s.\n\n",
		name, describe, best, unit, strings.Join(fast, ", "))
	fmt.Fprintf(w, "| target/s | achieved/s | ok | failed | p50 ms | p90 ms | p99 ms | max ms | CPU µs per %s (all processes) |\n", unit)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %.0f | %d | %d | %.2f | %.2f | %.2f | %.2f | %.1f |\n",
			r.target, r.achieved, r.successful, r.failed, r.p50, r.p90, r.p99, r.max, r.cpuPerReq)
	}
	fmt.Fprintln(w)
}

// writeRatios compares every set-up with the reference (Kamailio, or SIPp's own
// uas): the highest rate with no failure, and CPU per call at the highest rate
// both passed.
func writeRatios(w io.Writer, order []string, all map[string][]result, refName string, ref []result) {
	best := func(rs []result) (int, map[int]float64) {
		b, cpu := 0, map[int]float64{}
		for _, r := range rs {
			if r.held() {
				b = r.target
				cpu[r.target] = r.cpuPerReq
			}
		}
		return b, cpu
	}
	refBest, refCPU := best(ref)
	fmt.Fprintf(w, "Against %s, same run, same machine:\n\n", refName)
	fmt.Fprintf(w, "| set-up | highest rate, no failure | ratio to %s | CPU per call at the highest rate both held | ratio to %s |\n", refName, refName)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, name := range order {
		b, cpu := best(all[name])
		common := min(b, refBest)
		ratioCPU := 0.0
		if refCPU[common] > 0 {
			ratioCPU = cpu[common] / refCPU[common]
		}
		fmt.Fprintf(w, "| %s | %d/s | %.2f | %.1f µs at %d/s | %.2f |\n", name, b, float64(b)/float64(max(refBest, 1)), cpu[common], common, ratioCPU)
	}
	fmt.Fprintln(w)
}

// treeCPU sums user+system CPU, from /proc, of the processes and all their
// descendants (Kamailio forks its workers).
func treeCPU(procs []*exec.Cmd) float64 {
	type stat struct {
		ppid  int
		ticks float64
	}
	stats := map[int]stat{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ppid, _ := strconv.Atoi(f[1])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		stats[pid] = stat{ppid: ppid, ticks: u + s}
	}
	in := map[int]bool{}
	for _, p := range procs {
		in[p.Process.Pid] = true
	}
	for changed := true; changed; {
		changed = false
		for pid, st := range stats {
			if !in[pid] && in[st.ppid] {
				in[pid], changed = true, true
			}
		}
	}
	var ticks float64
	for pid := range in {
		ticks += stats[pid].ticks
	}
	return ticks / 100 // USER_HZ
}

// waitSIP waits until something answers an OPTIONS at addr (any response).
func waitSIP(addr string) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	probe := "OPTIONS sip:probe@" + addr + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() +
		";branch=z9hG4bKprobe\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\n" +
		"Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, _ = conn.Write([]byte(probe))
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := conn.Read(buf); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // a refused port answers at once
	}
	return fmt.Errorf("nothing answers SIP at %s", addr)
}

// waitBound waits until something holds the UDP port of addr: SIPp's uas
// answers nothing but its scenario, so a probe request would get no answer.
func waitBound(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing bound %s", addr)
}

func kamailioVersion() string {
	out, _ := exec.Command("kamailio", "-v").CombinedOutput()
	if m := regexp.MustCompile(`kamailio ([0-9.]+)`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return "?"
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
