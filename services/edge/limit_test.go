package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestSourceLimiter(t *testing.T) {
	clock := clockwork.NewFakeClock()
	l := newSourceLimiter(10, 3, clock)
	for i := range 3 {
		if !l.allow("192.0.2.1") {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if l.allow("192.0.2.1") {
		t.Fatal("a fourth request at once taken: the burst is 3")
	}
	if !l.allow("192.0.2.2") {
		t.Fatal("another source refused: limits are per source")
	}
	clock.Advance(100 * time.Millisecond) // one token at 10/s
	if !l.allow("192.0.2.1") || l.allow("192.0.2.1") {
		t.Fatal("after 100 ms at 10/s exactly one more request is due")
	}
	if newSourceLimiter(0, 0, clock).allow("192.0.2.1") != true {
		t.Fatal("a limit of 0 is off")
	}
}

// TestSourceLimiterForgets: past maxSources, buckets that are full again are
// dropped, so spoofed sources cannot grow the map without end.
func TestSourceLimiterForgets(t *testing.T) {
	clock := clockwork.NewFakeClock()
	l := newSourceLimiter(100, 1, clock)
	for i := range maxSources {
		l.allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	clock.Advance(2 * time.Second)
	l.allow("192.0.2.1")
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets kept, want only the new source's", n)
	}
}

// BenchmarkSourceLimiter is the limiter's cost per request: one source, and
// 10,000 sources taking turns.
func BenchmarkSourceLimiter(b *testing.B) {
	for _, sources := range []int{1, 10000} {
		b.Run(fmt.Sprintf("sources=%d", sources), func(b *testing.B) {
			l := newSourceLimiter(1e9, 1e9, clockwork.NewRealClock())
			keys := make([]string, sources)
			for i := range keys {
				keys[i] = fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				l.allow(keys[i%sources])
			}
		})
	}
}
