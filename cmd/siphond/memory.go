package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// tuneMemory sets the collector for a SIP server unless the environment
// does (GOGC), and returns idle memory to the system.
//
// Measured on the 2-core bench machine (docs/benchmarks.md, "Memory"), the
// embedded call-server at 1,000 calls/s: GOGC=400 alone held 1,012 MB of RSS
// and kept it idle; a 256 MiB soft limit (GOMEMLIMIT) held RSS at 259 MB but
// a 224 MiB one cost 2.6 times the CPU per call (1,219 against 460 µs): the
// collector runs without end near a limit the live heap of Timer J's
// transactions approaches. So no default limit yet (GOMEMLIMIT sets one);
// idle memory is returned.
func tuneMemory(ctx context.Context, getenv func(string) string) {
	if getenv("GOGC") == "" {
		// Each SIP message allocates a few KiB that die within a millisecond,
		// while the live heap stays small: collecting at 4x the live heap
		// instead of 2x halves the CPU the collector takes.
		debug.SetGCPercent(400)
	}
	go returnIdleMemory(ctx)
}

// returnIdleMemory gives the heap back to the system once the load is
// gone. Idle, nothing allocates, so nothing collects either: the garbage of
// the last busy minute stays, and with it the RSS. When less than idleAlloc
// was allocated over a whole idleCheck and more than idleHeld is held, one
// forced collection returns it.
func returnIdleMemory(ctx context.Context) {
	tick := time.NewTicker(idleCheck)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if idleAndHolding(last, &m) {
			debug.FreeOSMemory()
		}
		last = m.TotalAlloc
	}
}

// idleAndHolding says, of stats read one idleCheck after an earlier
// TotalAlloc of since, that the process is quiet and holds enough to give back.
func idleAndHolding(since uint64, m *runtime.MemStats) bool {
	return m.TotalAlloc-since < idleAlloc && m.HeapSys-m.HeapReleased > idleHeld
}

// What counts as idle for returnIdleMemory, and as worth returning.
const (
	idleAlloc = 16 << 20
	idleHeld  = 64 << 20
)

// idleCheck is how often returnIdleMemory looks.
const idleCheck = 10 * time.Second
