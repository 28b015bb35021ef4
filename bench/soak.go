package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// soakRun holds the embedded call-server at rate calls a second for
// duration (SIPp's INVITE-ACK-BYE), then leaves it idle for idle, sampling
// the siphond process's RSS every sampleEvery: the memory figure of issue 15.
func (p params) soakRun(report *strings.Builder, rate int, duration, idle time.Duration) error {
	p.mode = "calls"
	load, err := p.load()
	if err != nil {
		return err
	}
	gogc, limit := orDash(os.Getenv("GOGC")), orDash(os.Getenv("GOMEMLIMIT"))
	s, err := p.startSetup("embedded")
	if err != nil {
		return err
	}
	defer s.stop()
	pid := s.procs[0].Process.Pid
	fmt.Fprintf(report, "Machine: %s; %s; %s; SIPp %s. One siphond --mode call-server (GOGC %s, GOMEMLIMIT %s): %d calls/s for %v, then idle for %v; RSS of the siphond process.\n\n",
		cpuModel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion(), sippVersion(), gogc, limit, rate, duration, idle)
	fmt.Fprintln(report, "| at | phase | RSS MB |")
	fmt.Fprintln(report, "|---:|---|---:|")
	start := time.Now()
	sample := func(phase string) float64 {
		mb := rssMB(pid)
		fmt.Fprintf(report, "| %ds | %s | %.0f |\n", int(time.Since(start).Seconds()), phase, mb)
		fmt.Fprintf(os.Stderr, "   %4ds %-5s RSS %.0f MB\n", int(time.Since(start).Seconds()), phase, mb)
		return mb
	}
	cpu0 := treeCPU(s.procs)
	done := make(chan result, 1)
	go func() {
		r, err := sipp(load, s.sip, rate, duration)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: soak:", err)
		}
		done <- r
	}()
	peak := 0.0
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	var r result
loop:
	for {
		select {
		case r = <-done:
			if r.successful > 0 {
				r.cpuPerReq = (treeCPU(s.procs) - cpu0) / float64(r.successful) * 1e6
			}
			break loop
		case <-tick.C:
			peak = max(peak, sample("load"))
		}
	}
	for end := time.Now().Add(idle); time.Now().Before(end); {
		<-tick.C
		sample("idle")
	}
	last := rssMB(pid)
	fmt.Fprintf(report, "\n%d calls ok, %d failed, %.1f µs CPU per call; RSS peak %.0f MB under load, %.0f MB after %v idle.\n\n",
		r.successful, r.failed, r.cpuPerReq, peak, last, idle)
	return nil
}

// sampleEvery is the soak's RSS sampling period.
const sampleEvery = 10 * time.Second

// rssMB is a process's resident set, from /proc.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func orDash(v string) string {
	if v == "" {
		return "unset"
	}
	return v
}
