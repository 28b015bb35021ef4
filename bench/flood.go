package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// floodRun measures what the per-source limit (--udp-rate-limit at its
// default, 200/s) buys a legitimate source: its OPTIONS at 50/s from
// 127.0.0.2, first alone, then while 127.0.0.1 floods at p.floodRate.
func (p params) floodRun(report *strings.Builder, duration time.Duration) error {
	p.mode = "minimal"
	load, err := p.load()
	if err != nil {
		return err
	}
	legit := load
	legit.args = append([]string{}, "-i", "127.0.0.2", "-rtt_freq", "50") // 500 answers: dump the times before SIPp's default of 1000
	fmt.Fprintf(report, "Machine: %s; %s; %s; SIPp %s on the same machine. One siphond --mode minimal, --udp-rate-limit 200 (the default): "+
		"a source at 50 OPTIONS/s (127.0.0.2) alone, then while another (127.0.0.1) floods at %d/s.\n\n",
		cpuModel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion(), sippVersion(), p.floodRate)
	fmt.Fprintln(report, "| the 50/s source | ok | failed | p50 ms | p99 ms | max ms | flood: answered of sent | siphond CPU, % of a core |")
	fmt.Fprintln(report, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, flooding := range []bool{false, true} {
		s, err := p.startSetupWith("embedded", []string{"--udp-rate-limit", "200"})
		if err != nil {
			return err
		}
		cpu0 := treeCPU(s.procs)
		floods := make(chan result, 1)
		if flooding {
			go func() {
				r, err := sipp(load, s.sip, p.floodRate, duration)
				if err != nil {
					fmt.Fprintln(os.Stderr, "bench: flood:", err)
				}
				floods <- r
			}()
		}
		r, err := sipp(legit, s.sip, 50, duration)
		flood := result{}
		if flooding {
			flood = <-floods
		}
		cpu := treeCPU(s.procs) - cpu0
		s.stop()
		if err != nil {
			return err
		}
		what, answered := "alone", "—"
		if flooding {
			what = "while the other floods"
			answered = fmt.Sprintf("%d of %d", flood.successful, flood.successful+flood.failed)
		}
		busy := cpu / duration.Seconds() * 100
		fmt.Fprintf(os.Stderr, "   %s: %d ok, %d failed, p99 %.2f ms; flood %s\n", what, r.successful, r.failed, r.p99, answered)
		fmt.Fprintf(report, "| %s | %d | %d | %.2f | %.2f | %.2f | %s | %.1f |\n", what, r.successful, r.failed, r.p50, r.p99, r.max, answered, busy)
	}
	fmt.Fprintln(report)
	return nil
}
