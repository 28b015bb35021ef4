// Package storetest is the conformance suite every store implementation passes,
// so the in-memory default and Redis cannot drift apart. Run it from each
// implementation's tests with a constructor for a fresh backend.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Run runs the suite. Keys are prefixed per test, so backends may be shared.
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Ephemeral", func(t *testing.T) { ephemeralSuite(t, open) })
	t.Run("Location", func(t *testing.T) { locationSuite(t, open) })
	t.Run("Secrets", func(t *testing.T) { secretsSuite(t, open) })
	t.Run("Dialogs", func(t *testing.T) { dialogSuite(t, open) })
	t.Run("Subscriptions", func(t *testing.T) { subscriptionSuite(t, open) })
	t.Run("Publications", func(t *testing.T) { publicationSuite(t, open) })
	t.Run("Bridges", func(t *testing.T) { bridgeSuite(t, open) })
}

var runID atomic.Int64

// key is unique per test and run, so a shared Redis holds no leftovers.
func key(t *testing.T, name string) string {
	return fmt.Sprintf("test:%d:%d:%s:%s", time.Now().UnixNano(), runID.Add(1), t.Name(), name)
}

// takenOnce has four callers, as four replicas would, call take until it
// hands out nothing, and reports a failure for each id of mine not handed
// out exactly once, and for notMine handed out at all. kind names the
// records in the failures.
func takenOnce(t *testing.T, kind string, mine map[string]bool, notMine string, take func() ([]string, error)) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := take()
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, id := range got {
					seen[id]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id := range mine {
		if seen[id] != 1 {
			t.Errorf("%s %s handed out %d times, want once", kind, id, seen[id])
		}
	}
	if seen[notMine] != 0 {
		t.Errorf("a %s not due was handed out", kind)
	}
}

// eventually polls cond until it holds or the deadline passes. Expiry is real
// time in Redis, so the suite watches for it rather than sleeping a guess.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ephemeralSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()

	t.Run("ClaimOnce", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		mustClaim(t, e, k, time.Minute, true)
		mustClaim(t, e, k, time.Minute, false)
		mustClaim(t, e, key(t, "b"), time.Minute, true)
	})

	t.Run("ClaimExpires", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		start := time.Now()
		mustClaim(t, e, k, 150*time.Millisecond, true)
		eventually(t, 3*time.Second, "claim expired", func() bool {
			ok, err := e.Claim(ctx, k, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		if held := time.Since(start); held < 150*time.Millisecond {
			t.Fatalf("claim with ttl 150ms was free again after %v", held)
		}
	})

	t.Run("Release", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		mustClaim(t, e, k, time.Minute, true)
		if err := e.Release(ctx, k); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, e, k, time.Minute, true)
	})

	t.Run("ClaimRace", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		var won atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := e.Claim(ctx, k, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d of 32 concurrent claims won, want exactly 1", won.Load())
		}
	})

	t.Run("IncrCounts", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		for want := int64(1); want <= 3; want++ {
			if n := mustIncr(t, e, k, time.Minute); n != want {
				t.Fatalf("incr %d: got %d", want, n)
			}
		}
		if n := mustCount(t, e, k); n != 3 {
			t.Fatalf("count: got %d, want 3", n)
		}
		if n := mustCount(t, e, key(t, "absent")); n != 0 {
			t.Fatalf("count of absent key: got %d, want 0", n)
		}
		other := key(t, "b")
		mustIncr(t, e, other, time.Minute)
		ns, err := e.Counts(context.Background(), k, key(t, "absent"), other)
		if err != nil || len(ns) != 3 || ns[0] != 3 || ns[1] != 0 || ns[2] != 1 {
			t.Fatalf("counts: got %v %v, want [3 0 1]", ns, err)
		}
	})

	t.Run("IncrWindowEnds", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		mustIncr(t, e, k, 150*time.Millisecond)
		mustIncr(t, e, k, 150*time.Millisecond)
		eventually(t, 3*time.Second, "counter window ended", func() bool { return mustCount(t, e, k) == 0 })
		if n := mustIncr(t, e, k, time.Minute); n != 1 {
			t.Fatalf("first incr of a new window: got %d, want 1", n)
		}
	})

	t.Run("IncrDoesNotExtendWindow", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		mustIncr(t, e, k, 300*time.Millisecond)
		deadline := time.Now().Add(3 * time.Second)
		// Keep counting inside the window: the window must still end on time,
		// or a steady attacker would never be let out of a lock-out (and never counted again).
		for mustCount(t, e, k) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("window extended by later increments")
			}
			mustIncr(t, e, k, 300*time.Millisecond)
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("IncrRace", func(t *testing.T) {
		e := open(t).Ephemeral()
		k := key(t, "a")
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Incr(ctx, k, time.Minute); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := mustCount(t, e, k); n != 50 {
			t.Fatalf("50 concurrent incrs counted %d", n)
		}
	})
}

func mustClaim(t *testing.T, e store.Ephemeral, k string, ttl time.Duration, want bool) {
	t.Helper()
	ok, err := e.Claim(context.Background(), k, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if ok != want {
		t.Fatalf("claim %s: got %v, want %v", k, ok, want)
	}
}

func mustIncr(t *testing.T, e store.Ephemeral, k string, ttl time.Duration) int64 {
	t.Helper()
	n, err := e.Incr(context.Background(), k, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustCount(t *testing.T, e store.Ephemeral, k string) int64 {
	t.Helper()
	n, err := e.Count(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
