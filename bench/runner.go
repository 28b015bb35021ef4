package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// runnerSetups measures the callers of the runner mode: `siphond run` and
// SIPp's own uac, each against a SIPp uas (not counted), at rising rates.
// The CPU per call is the caller's process, from the kernel's accounting
// when it exits.
func (p params) runnerSetups(report *strings.Builder, setupList string, steps []int, duration time.Duration) (map[string][]result, []string, error) {
	all := map[string][]result{}
	var order []string
	for _, name := range strings.Split(setupList, ",") {
		if name != "siphond-run" && name != "sipp-uac" {
			return nil, nil, fmt.Errorf("unknown set-up %q for --mode runner (want siphond-run, sipp-uac)", name)
		}
		fmt.Fprintf(os.Stderr, "== set-up %s\n", name)
		uas := fmt.Sprintf("127.0.0.1:%d", freePort())
		peer := exec.Command("sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", uas[strings.LastIndex(uas, ":")+1:], "-nostdin", "-buff_size", "4194304")
		peer.Dir = p.work
		if err := peer.Start(); err != nil {
			return nil, nil, err
		}
		if err := waitBound(uas); err != nil {
			_ = peer.Process.Kill()
			return nil, nil, err
		}
		var results []result
		for _, rate := range steps {
			r, err := p.caller(name, uas, rate, duration)
			if err != nil {
				_ = peer.Process.Kill()
				_ = peer.Wait()
				return nil, nil, err
			}
			fmt.Fprintf(os.Stderr, "   rate %6d: achieved %8.1f/s, %d ok, %d failed, %.1f µs CPU/call\n", rate, r.achieved, r.successful, r.failed, r.cpuPerReq)
			results = append(results, r)
			if !r.held() {
				break
			}
		}
		_ = peer.Process.Kill()
		_ = peer.Wait()
		describe := "SIPp " + sippVersion() + " -sn uac against a SIPp -sn uas (not counted)"
		if name == "siphond-run" {
			describe = "siphond run with a scenario of INVITE, expect 2xx, BYE, expect 200 (its own edge and embedded NATS) against a SIPp -sn uas (not counted); response times are its send steps'"
		}
		writeTable(report, name, describe, "call", results)
		all[name] = results
		order = append(order, name)
	}
	return all, order, nil
}

var runSummary = regexp.MustCompile(`calls: (\d+), (\d+) passed, (\d+) failed in \S+ \(([\d.]+)/s\); send response times p50 (\S+) p90 (\S+) p99 (\S+) max (\S+)`)

// caller runs one bounded step of the caller name at rate.
func (p params) caller(name, uas string, rate int, duration time.Duration) (result, error) {
	calls := rate * int(duration/time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), duration*3+30*time.Second)
	defer cancel()
	r := result{target: rate}
	var cmd *exec.Cmd
	if name == "siphond-run" {
		file := filepath.Join(p.work, "call.json")
		body := `v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`
		sc := `{"local_uri": "sip:bench@127.0.0.1", "steps": [
 {"type": "send", "method": "INVITE", "uri": "sip:service@` + uas + `", "body": "` + body + `"}, {"type": "expect", "status": "2xx"},
 {"type": "send", "method": "BYE", "uri": "sip:service@` + uas + `"}, {"type": "expect", "status": 200}]}`
		if err := os.WriteFile(file, []byte(sc), 0o644); err != nil {
			return r, err
		}
		port := strconv.Itoa(freePort())
		cmd = exec.CommandContext(ctx, p.siphond, "run", file, "--udp-bind", "127.0.0.1:"+port, "--tcp-bind", "",
			"--calls", strconv.Itoa(calls), "--rate", strconv.Itoa(rate), "--concurrency", strconv.Itoa(max(100, rate)))
	} else {
		cmd = exec.CommandContext(ctx, "sipp", "-sn", "uac", "-i", "127.0.0.1", "-p", strconv.Itoa(freePort()), "-r", strconv.Itoa(rate),
			"-m", strconv.Itoa(calls), "-rp", "1000", "-nostdin", "-buff_size", "4194304", "-timeout", fmt.Sprintf("%ds", int((duration*2+10*time.Second).Seconds())),
			"-trace_rtt", "-rtt_freq", "1000", uas)
	}
	dir, err := os.MkdirTemp(p.work, "caller")
	if err != nil {
		return r, err
	}
	cmd.Dir = dir
	start := time.Now()
	out, _ := cmd.CombinedOutput() // a failed call is an exit 1: the counts say how many
	wall := time.Since(start)
	if cmd.ProcessState != nil {
		r.cpuPerReq = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if name == "siphond-run" {
		m := runSummary.FindStringSubmatch(string(out))
		if m == nil {
			return r, fmt.Errorf("siphond run printed no summary:\n%s", tail(string(out), 2000))
		}
		r.successful, _ = strconv.Atoi(m[2])
		r.failed, _ = strconv.Atoi(m[3])
		r.achieved, _ = strconv.ParseFloat(m[4], 64)
		ms := func(s string) float64 { d, _ := time.ParseDuration(s); return float64(d) / float64(time.Millisecond) }
		r.p50, r.p90, r.p99, r.max = ms(m[5]), ms(m[6]), ms(m[7]), ms(m[8])
	} else {
		for _, m := range sippCount.FindAllStringSubmatch(string(out), -1) {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "Successful" {
				r.successful = n
			} else {
				r.failed = n
			}
		}
		r.achieved = float64(r.successful) / wall.Seconds()
		if rtts, span, err := readRTT(dir); err == nil { // INVITE to 200, as the other modes
			r.p50, r.p90, r.p99, r.max = pct(rtts, .50), pct(rtts, .90), pct(rtts, .99), pct(rtts, 1)
			if span > 0 {
				r.achieved = float64(r.successful) / span.Seconds()
			}
		}
	}
	if r.successful+r.failed < calls {
		r.failed += calls - r.successful - r.failed
	}
	if r.successful > 0 {
		r.cpuPerReq = r.cpuPerReq / float64(r.successful) * 1e6
	}
	return r, nil
}
