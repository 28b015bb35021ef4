package storetest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

func newSubscription(t *testing.T, name, event, resource string, expires time.Time) *store.Subscription {
	callID := key(t, name)
	return &store.Subscription{
		ID: store.SubscriptionID(callID, "n1", event, ""), CallID: callID, LocalTag: "n1", RemoteTag: "w1",
		Event: event, Resource: resource, Watcher: "sip:watcher@example.com", State: "active",
		RemoteTarget: "sip:watcher@192.0.2.1:5060", RouteSet: []string{"<sip:p1.example;lr>"},
		RemoteCSeq: 1, Edge: "edge-1", Transport: "udp", Expires: expires,
	}
}

func ids(ss []*store.Subscription, only map[string]bool) []string {
	var out []string
	for _, s := range ss {
		if only == nil || only[s.ID] {
			out = append(out, s.ID)
		}
	}
	sort.Strings(out)
	return out
}

func subscriptionSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()

	t.Run("CreateGetUpdateDelete", func(t *testing.T) {
		ss := open(t).Subscriptions()
		s := newSubscription(t, "s", "presence", key(t, "alice"), time.Now().Add(time.Hour))
		if err := ss.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		again := *s
		if err := ss.Create(ctx, &again); !errors.Is(err, store.ErrSubscriptionExists) {
			t.Fatalf("second create: %v, want ErrSubscriptionExists", err)
		}
		a, _ := ss.Get(ctx, s.ID)
		b, _ := ss.Get(ctx, s.ID)
		if a.Version != 1 || a.RouteSet[0] != s.RouteSet[0] {
			t.Fatalf("got %+v", a)
		}
		a.RemoteCSeq = 2
		if err := ss.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		b.RemoteCSeq = 3
		if err := ss.Update(ctx, b); !errors.Is(err, store.ErrSubscriptionConflict) {
			t.Fatalf("stale update: %v, want ErrSubscriptionConflict", err)
		}
		if got, _ := ss.Get(ctx, s.ID); got.RemoteCSeq != 2 || got.Version != 2 {
			t.Fatalf("got cseq %d version %d, want 2 2", got.RemoteCSeq, got.Version)
		}
		if gone, err := ss.Delete(ctx, s.ID); err != nil || gone.ID != s.ID {
			t.Fatalf("delete: %v %v", gone, err)
		}
		if _, err := ss.Get(ctx, s.ID); !errors.Is(err, store.ErrSubscriptionNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := ss.Update(ctx, a); !errors.Is(err, store.ErrSubscriptionNotFound) {
			t.Fatalf("update after delete: %v", err)
		}
	})

	t.Run("Watchers", func(t *testing.T) {
		ss := open(t).Subscriptions()
		alice, bob := key(t, "alice"), key(t, "bob")
		later := time.Now().Add(time.Hour)
		w1 := newSubscription(t, "w1", "presence", alice, later)
		w2 := newSubscription(t, "w2", "presence", alice, later)
		other := newSubscription(t, "w3", "dialog", alice, later) // another package
		elsewhere := newSubscription(t, "w4", "presence", bob, later)
		for _, s := range []*store.Subscription{w1, w2, other, elsewhere} {
			if err := ss.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ss.Watchers(ctx, "presence", alice)
		want := []string{w1.ID, w2.ID}
		sort.Strings(want)
		if err != nil || !equal(ids(got, nil), want) {
			t.Fatalf("watchers of alice's presence: %v %v, want %v", ids(got, nil), err, want)
		}
		if _, err := ss.Delete(ctx, w1.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := ss.Watchers(ctx, "presence", alice); !equal(ids(got, nil), []string{w2.ID}) {
			t.Fatalf("after unsubscribing w1: %v, want only w2", ids(got, nil))
		}
	})

	t.Run("InDialog", func(t *testing.T) {
		ss := open(t).Subscriptions()
		first := newSubscription(t, "d", "presence", key(t, "alice"), time.Now().Add(time.Hour))
		second := *first
		second.Event, second.EventID = "dialog", "2"
		second.ID = store.SubscriptionID(first.CallID, first.LocalTag, second.Event, second.EventID)
		elsewhere := newSubscription(t, "other", "presence", key(t, "alice"), time.Now().Add(time.Hour))
		for _, s := range []*store.Subscription{first, &second, elsewhere} {
			if err := ss.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{first.ID, second.ID}
		sort.Strings(want)
		if got, err := ss.InDialog(ctx, first.CallID, first.LocalTag); err != nil || !equal(ids(got, nil), want) {
			t.Fatalf("the dialog's subscriptions: %v %v, want %v", ids(got, nil), err, want)
		}
		if _, err := ss.Delete(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := ss.InDialog(ctx, first.CallID, first.LocalTag); !equal(ids(got, nil), []string{second.ID}) {
			t.Fatalf("after the first ended: %v, want the second only", ids(got, nil))
		}
	})

	t.Run("NextCSeqRisesAcrossReplicas", func(t *testing.T) {
		ss := open(t).Subscriptions()
		callID, keep := key(t, "call"), time.Now().Add(time.Hour)
		var mu sync.Mutex
		seen := map[uint32]bool{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := uint32(0)
				for range 25 {
					n, err := ss.NextCSeq(ctx, callID, "n1", keep)
					if err != nil {
						t.Error(err)
						return
					}
					if n <= last {
						t.Errorf("CSeq %d after %d", n, last)
					}
					last = n
					mu.Lock()
					seen[n] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for n := uint32(1); n <= 100; n++ {
			if !seen[n] {
				t.Fatalf("CSeq %d never handed out: want 1…100, each once", n)
			}
		}
		if n, _ := ss.NextCSeq(ctx, callID, "other-tag", keep); n != 1 {
			t.Fatalf("another dialog's first CSeq: %d, want 1", n)
		}
	})

	t.Run("ExpiredOnceAcrossReplicas", func(t *testing.T) {
		b := open(t)
		ss := b.Subscriptions()
		mine := map[string]bool{}
		past := time.Now().Add(-time.Second)
		for i := range 20 {
			s := newSubscription(t, "e"+string(rune('a'+i)), "presence", key(t, "r"), past)
			if err := ss.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			mine[s.ID] = true
		}
		fresh := newSubscription(t, "fresh", "presence", key(t, "r"), time.Now().Add(time.Hour))
		if err := ss.Create(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		takenOnce(t, "expired subscription", mine, fresh.ID, func() ([]string, error) {
			got, err := ss.Expired(ctx, time.Now(), 3)
			return ids(got, nil), err
		})
		// Handed out, it is still readable for its terminated NOTIFY; a
		// refresh to a later expiry makes it due again then, not now.
		for id := range mine {
			s, err := ss.Get(ctx, id)
			if err != nil {
				t.Fatalf("expired subscription gone before its NOTIFY: %v", err)
			}
			s.Expires = time.Now().Add(time.Hour)
			if err := ss.Update(ctx, s); err != nil {
				t.Fatal(err)
			}
			break
		}
		if got, _ := ss.Expired(ctx, time.Now(), 100); len(ids(got, mine)) != 0 {
			t.Fatalf("handed out again: %v", ids(got, mine))
		}
	})
}
