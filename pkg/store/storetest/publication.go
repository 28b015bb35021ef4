package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

func newPublication(t *testing.T, name, event, resource string, expires time.Time) *store.Publication {
	return &store.Publication{ETag: key(t, name), Event: event, Resource: resource,
		ContentType: "application/pidf+xml", Body: "<presence/>", Published: time.Now(), Expires: expires}
}

func etags(ps []*store.Publication) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ETag)
	}
	sort.Strings(out)
	return out
}

func publicationSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()

	t.Run("CreateGetDelete", func(t *testing.T) {
		ps := open(t).Publications()
		p := newPublication(t, "p", "presence", key(t, "alice"), time.Now().Add(time.Hour))
		if err := ps.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		again := *p
		if err := ps.Create(ctx, &again); !errors.Is(err, store.ErrPublicationExists) {
			t.Fatalf("second create: %v, want ErrPublicationExists", err)
		}
		got, err := ps.Get(ctx, p.ETag)
		if err != nil || got.Body != p.Body || got.ContentType != p.ContentType {
			t.Fatalf("get: %+v %v", got, err)
		}
		if gone, err := ps.Delete(ctx, p.ETag); err != nil || gone.ETag != p.ETag {
			t.Fatalf("delete: %v %v", gone, err)
		}
		if _, err := ps.Delete(ctx, p.ETag); !errors.Is(err, store.ErrPublicationNotFound) {
			t.Fatalf("second delete: %v, want ErrPublicationNotFound (one refresh of two wins)", err)
		}
		if _, err := ps.Get(ctx, p.ETag); !errors.Is(err, store.ErrPublicationNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})

	// A refresh stores the new entity-tag before removing the old one
	// (RFC 3903 §6: each success gets a new one): a watcher's NOTIFY made
	// meanwhile must still find the state, never fall back to none.
	t.Run("ReplacedNeverMissing", func(t *testing.T) {
		ps := open(t).Publications()
		alice := key(t, "alice")
		later := time.Now().Add(time.Hour)
		cur := newPublication(t, "p0", "presence", alice, later)
		if err := ps.Create(ctx, cur); err != nil {
			t.Fatal(err)
		}
		const replacements = 300
		done := make(chan error, 1)
		go func() {
			for i := 1; i <= replacements; i++ {
				next := newPublication(t, fmt.Sprintf("p%d", i), "presence", alice, later)
				if err := ps.Create(ctx, next); err != nil {
					done <- err
					return
				}
				if _, err := ps.Delete(ctx, cur.ETag); err != nil {
					done <- err
					return
				}
				cur = next
			}
			done <- nil
		}()
		for reads := 0; ; reads++ {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%d reads during %d replacements", reads, replacements)
				return
			default:
			}
			got, err := ps.Published(ctx, "presence", alice)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatalf("read %d found no publication while one was being replaced", reads)
			}
		}
	})

	t.Run("Published", func(t *testing.T) {
		ps := open(t).Publications()
		alice, bob := key(t, "alice"), key(t, "bob")
		later := time.Now().Add(time.Hour)
		p1 := newPublication(t, "p1", "presence", alice, later)
		p2 := newPublication(t, "p2", "presence", alice, later)
		other := newPublication(t, "p3", "message-summary", alice, later)
		elsewhere := newPublication(t, "p4", "presence", bob, later)
		for _, p := range []*store.Publication{p1, p2, other, elsewhere} {
			if err := ps.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{p1.ETag, p2.ETag}
		sort.Strings(want)
		if got, err := ps.Published(ctx, "presence", alice); err != nil || !equal(etags(got), want) {
			t.Fatalf("alice's presence: %v %v, want %v", etags(got), err, want)
		}
		if _, err := ps.Delete(ctx, p1.ETag); err != nil {
			t.Fatal(err)
		}
		if got, _ := ps.Published(ctx, "presence", alice); !equal(etags(got), []string{p2.ETag}) {
			t.Fatalf("after removing p1: %v, want only p2", etags(got))
		}
	})

	t.Run("ExpiredOnceAcrossReplicas", func(t *testing.T) {
		ps := open(t).Publications()
		mine := map[string]bool{}
		for i := range 20 {
			p := newPublication(t, "e"+string(rune('a'+i)), "presence", key(t, "r"), time.Now().Add(-time.Second))
			if err := ps.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			mine[p.ETag] = true
		}
		fresh := newPublication(t, "fresh", "presence", key(t, "r"), time.Now().Add(time.Hour))
		if err := ps.Create(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		takenOnce(t, "expired publication", mine, fresh.ETag, func() ([]string, error) {
			got, err := ps.Expired(ctx, time.Now(), 3)
			return etags(got), err
		})
	})
}
