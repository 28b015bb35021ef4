package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

func binding(aor, contact string, q float64, expires time.Time, callID string, cseq uint32) store.Binding {
	return store.Binding{
		AOR: aor, Contact: contact, Q: q, QSet: q >= 0, Expires: expires, CallID: callID, CSeq: cseq,
		Path: []string{"<sip:edge1.example.net;lr>"}, Instance: "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
		RegID: 1, Edge: "edge-1", Transport: "tcp", Source: "192.0.2.4:5060", Flow: "tcp:192.0.2.4:5060",
		Updated: expires.Add(-time.Hour).Truncate(time.Millisecond),
	}
}

func register(t *testing.T, l store.Location, reg store.Registration, now time.Time) store.Outcome {
	t.Helper()
	out, err := l.Register(context.Background(), reg, now)
	if err != nil {
		t.Fatalf("register %+v: %v", reg, err)
	}
	return out
}

func contacts(bs []store.Binding) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Contact
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func locationSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	hour := now.Add(time.Hour)

	t.Run("AddRefreshRemove", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:alice@example.com")
		out := register(t, l, store.Registration{AOR: aor, CallID: "c1", CSeq: 1, Changes: []store.Change{
			{Binding: binding(aor, "sip:alice@192.0.2.4", 0.5, hour, "c1", 1)},
			{Binding: binding(aor, "sip:alice@192.0.2.5", 0.9, hour, "c1", 1)},
		}}, now)
		if len(out.Added) != 2 || !equal(contacts(out.Current), []string{"sip:alice@192.0.2.5", "sip:alice@192.0.2.4"}) {
			t.Fatalf("after add: added %v current %v", contacts(out.Added), contacts(out.Current))
		}
		got := out.Current[1]
		want := binding(aor, "sip:alice@192.0.2.4", 0.5, hour, "c1", 1)
		if !got.Expires.Equal(want.Expires) || got.Path[0] != want.Path[0] || got.Instance != want.Instance ||
			got.RegID != 1 || got.Flow != want.Flow || got.Edge != "edge-1" || !got.Updated.Equal(want.Updated) {
			t.Fatalf("binding not stored whole:\n got %+v\nwant %+v", got, want)
		}
		out = register(t, l, store.Registration{AOR: aor, CallID: "c1", CSeq: 2, Changes: []store.Change{
			{Binding: binding(aor, "sip:alice@192.0.2.4", 0.5, hour.Add(time.Minute), "c1", 2)},
			{Binding: binding(aor, "sip:alice@192.0.2.5", 0, time.Time{}, "c1", 2), Remove: true},
		}}, now)
		if len(out.Refreshed) != 1 || len(out.Removed) != 1 || !equal(contacts(out.Current), []string{"sip:alice@192.0.2.4"}) {
			t.Fatalf("after refresh/remove: refreshed %v removed %v current %v", contacts(out.Refreshed), contacts(out.Removed), contacts(out.Current))
		}
		if !out.Current[0].Expires.Equal(hour.Add(time.Minute)) {
			t.Fatalf("refresh did not move expiry: %v", out.Current[0].Expires)
		}
		got2, err := l.Lookup(ctx, aor, now)
		if err != nil || !equal(contacts(got2), []string{"sip:alice@192.0.2.4"}) {
			t.Fatalf("lookup: %v %v", contacts(got2), err)
		}
	})

	t.Run("OrderedByQ", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:bob@example.com")
		register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 1, Changes: []store.Change{
			{Binding: binding(aor, "sip:b@low", 0.1, hour, "c", 1)},
			{Binding: binding(aor, "sip:b@none", -1, hour, "c", 1)},
			{Binding: binding(aor, "sip:b@mid", 0.7, hour, "c", 1)},
		}}, now)
		got, err := l.Lookup(ctx, aor, now)
		if err != nil || !equal(contacts(got), []string{"sip:b@none", "sip:b@mid", "sip:b@low"}) {
			t.Fatalf("order: %v %v (no q ranks as 1.0)", contacts(got), err)
		}
	})

	t.Run("OutOfOrderChangesNothing", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:carol@example.com")
		register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 5, Changes: []store.Change{
			{Binding: binding(aor, "sip:c@a", -1, hour, "c", 5)},
		}}, now)
		for _, reg := range []store.Registration{
			{AOR: aor, CallID: "c", CSeq: 5, Changes: []store.Change{{Binding: binding(aor, "sip:c@a", -1, hour, "c", 5), Remove: true}}},
			{AOR: aor, CallID: "c", CSeq: 4, Changes: []store.Change{{Binding: binding(aor, "sip:c@b", -1, hour, "c", 4)}, {Binding: binding(aor, "sip:c@a", -1, hour, "c", 4)}}},
			{AOR: aor, CallID: "c", CSeq: 3, Wildcard: true},
		} {
			if _, err := l.Register(ctx, reg, now); !errors.Is(err, store.ErrOutOfOrder) {
				t.Fatalf("%+v: got %v, want ErrOutOfOrder", reg, err)
			}
		}
		if got, _ := l.Lookup(ctx, aor, now); !equal(contacts(got), []string{"sip:c@a"}) {
			t.Fatalf("an out-of-order request changed the bindings: %v", contacts(got))
		}
		// Another Call-ID may change it whatever its CSeq (§10.3 step 7).
		out := register(t, l, store.Registration{AOR: aor, CallID: "other", CSeq: 1, Changes: []store.Change{{Binding: binding(aor, "sip:c@a", -1, hour, "other", 1)}}}, now)
		if len(out.Refreshed) != 1 {
			t.Fatalf("other Call-ID refused: %+v", out)
		}
	})

	t.Run("Wildcard", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:dave@example.com")
		register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 1, Changes: []store.Change{
			{Binding: binding(aor, "sip:d@a", -1, hour, "c", 1)}, {Binding: binding(aor, "sip:d@b", -1, hour, "c", 1)},
		}}, now)
		out := register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 2, Wildcard: true}, now)
		if len(out.Removed) != 2 || len(out.Current) != 0 {
			t.Fatalf("wildcard: removed %v current %v", contacts(out.Removed), contacts(out.Current))
		}
		if got, _ := l.Lookup(ctx, aor, now); len(got) != 0 {
			t.Fatalf("bindings left: %v", contacts(got))
		}
	})

	t.Run("ExpiredIsNeverReturned", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:erin@example.com")
		soon := now.Add(10 * time.Second)
		register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 1, Changes: []store.Change{
			{Binding: binding(aor, "sip:e@short", -1, soon, "c", 1)}, {Binding: binding(aor, "sip:e@long", -1, hour, "c", 1)},
		}}, now)
		later := soon.Add(time.Millisecond)
		if got, _ := l.Lookup(ctx, aor, later); !equal(contacts(got), []string{"sip:e@long"}) {
			t.Fatalf("lookup after expiry: %v", contacts(got))
		}
		// An expired binding is not "refreshed": re-registering it adds it, and
		// the expiry found on the way is handed back to be announced.
		out := register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 2, Changes: []store.Change{{Binding: binding(aor, "sip:e@short", -1, hour, "c", 2)}}}, later)
		if len(out.Added) != 1 || !equal(contacts(out.Expired), []string{"sip:e@short"}) {
			t.Fatalf("re-adding an expired contact: added %v expired %v", contacts(out.Added), contacts(out.Expired))
		}
	})

	t.Run("ExpireAnnouncesOnce", func(t *testing.T) {
		b := open(t)
		l := b.Location()
		aor := key(t, "sip:frank@example.com")
		// Real time: the sweep must find what expired by itself.
		exp := time.Now().Add(200 * time.Millisecond)
		register(t, l, store.Registration{AOR: aor, CallID: "c", CSeq: 1, Changes: []store.Change{
			{Binding: binding(aor, "sip:f@a", -1, exp, "c", 1)}, {Binding: binding(aor, "sip:f@b", -1, exp, "c", 1)},
			{Binding: binding(aor, "sip:f@keep", -1, time.Now().Add(time.Hour), "c", 1)},
		}}, time.Now())
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		var rounds atomic.Int64
		deadline := time.Now().Add(5 * time.Second)
		for range 4 { // four replicas sweeping at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					got, err := l.Expire(ctx, time.Now(), 100)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, x := range got {
						if x.AOR == aor {
							seen[x.Contact]++
						}
					}
					done := seen["sip:f@a"]+seen["sip:f@b"] >= 2
					mu.Unlock()
					if done && rounds.Add(1) > 8 {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		if seen["sip:f@a"] != 1 || seen["sip:f@b"] != 1 || seen["sip:f@keep"] != 0 {
			t.Fatalf("expiry announcements: %v (want each expired contact exactly once)", seen)
		}
		if got, _ := l.Lookup(ctx, aor, time.Now()); !equal(contacts(got), []string{"sip:f@keep"}) {
			t.Fatalf("after expiry: %v", contacts(got))
		}
	})

	t.Run("ConcurrentRegistersAllLand", func(t *testing.T) {
		l := open(t).Location()
		aor := key(t, "sip:grace@example.com")
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := "sip:g@" + string(rune('a'+i))
				if _, err := l.Register(ctx, store.Registration{AOR: aor, CallID: c, CSeq: 1, Changes: []store.Change{{Binding: binding(aor, c, -1, hour, c, 1)}}}, now); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, _ := l.Lookup(ctx, aor, now); len(got) != 20 {
			t.Fatalf("%d of 20 concurrent registrations stored", len(got))
		}
	})
}

func secretsSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()
	b := open(t)
	name := key(t, "nonce")
	a, err := b.Secrets().Secret(ctx, name, 32)
	if err != nil || len(a) != 32 {
		t.Fatalf("secret: %d bytes, %v", len(a), err)
	}
	again, err := b.Secrets().Secret(ctx, name, 32)
	if err != nil || string(again) != string(a) {
		t.Fatal("a secret changed between reads")
	}
	other, _ := b.Secrets().Secret(ctx, key(t, "other"), 32)
	if string(other) == string(a) {
		t.Fatal("two secrets are the same")
	}
}
