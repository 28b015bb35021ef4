package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

func newDialog(t *testing.T, name string) *store.Dialog {
	id := key(t, name)
	return &store.Dialog{
		ID: id, CallID: id, LocalTag: "l1", RemoteTag: "r1", State: store.DialogConfirmed,
		RemoteTarget: "sip:alice@192.0.2.1:5060", RouteSet: []string{"<sip:p1.example;lr>"},
		RemoteCSeq: 1, Edge: "edge-1", Transport: "udp",
		Due: time.Now().Add(time.Hour), Expires: time.Now().Add(2 * time.Hour),
	}
}

func dialogSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()

	t.Run("CreateGetDelete", func(t *testing.T) {
		ds := open(t).Dialogs()
		d := newDialog(t, "d")
		if err := ds.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		again := *d
		if err := ds.Create(ctx, &again); !errors.Is(err, store.ErrDialogExists) {
			t.Fatalf("second create of %s: %v, want ErrDialogExists", d.ID, err)
		}
		got, err := ds.Get(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.RemoteTarget != d.RemoteTarget || got.RouteSet[0] != d.RouteSet[0] || got.Version != 1 {
			t.Fatalf("got %+v", got)
		}
		gone, err := ds.Delete(ctx, d.ID)
		if err != nil || gone.ID != d.ID {
			t.Fatalf("delete: %v %v", gone, err)
		}
		if _, err := ds.Get(ctx, d.ID); !errors.Is(err, store.ErrDialogNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if _, err := ds.Delete(ctx, d.ID); !errors.Is(err, store.ErrDialogNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})

	t.Run("UpdateIsCompareAndSet", func(t *testing.T) {
		ds := open(t).Dialogs()
		d := newDialog(t, "d")
		if err := ds.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		a, _ := ds.Get(ctx, d.ID)
		b, _ := ds.Get(ctx, d.ID)
		a.RemoteCSeq = 2
		if err := ds.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		b.RemoteCSeq = 3
		if err := ds.Update(ctx, b); !errors.Is(err, store.ErrDialogConflict) {
			t.Fatalf("stale update: %v, want ErrDialogConflict", err)
		}
		got, _ := ds.Get(ctx, d.ID)
		if got.RemoteCSeq != 2 || got.Version != 2 {
			t.Fatalf("got cseq %d version %d, want 2 2", got.RemoteCSeq, got.Version)
		}
		missing := newDialog(t, "missing")
		missing.Version = 1
		if err := ds.Update(ctx, missing); !errors.Is(err, store.ErrDialogNotFound) {
			t.Fatalf("update of a missing dialog: %v", err)
		}
	})

	t.Run("RetryLosesNoChange", func(t *testing.T) {
		ds := open(t).Dialogs()
		d := newDialog(t, "d")
		d.RemoteCSeq = 0
		if err := ds.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := store.Retry(ctx, ds, d.ID, func(d *store.Dialog) error { d.RemoteCSeq++; return nil }); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, _ := ds.Get(ctx, d.ID)
		if got.RemoteCSeq != 10 {
			t.Fatalf("10 concurrent increments stored %d", got.RemoteCSeq)
		}
	})

	t.Run("DueHandsEachDialogOnce", func(t *testing.T) {
		ds := open(t).Dialogs()
		var ids []string
		for _, name := range []string{"a", "b", "c"} {
			d := newDialog(t, name)
			d.Due = time.Now().Add(-time.Second)
			if err := ds.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.ID)
		}
		later := newDialog(t, "later")
		if err := ds.Create(ctx, later); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := ds.Due(ctx, time.Now(), 100)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("due dialog %s handed out %d times, want once", id, seen[id])
			}
		}
		if seen[later.ID] != 0 {
			t.Errorf("a dialog due in an hour was handed out")
		}
		// A claimed dialog is due again only once Update gives it a Due.
		d, _ := ds.Get(ctx, ids[0])
		d.Due = time.Now().Add(-time.Millisecond)
		if err := ds.Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		got, err := ds.Due(ctx, time.Now(), 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range got {
			if g.ID == ids[0] {
				n++
			} else if g.ID == ids[1] || g.ID == ids[2] {
				t.Errorf("claimed dialog %s handed out again", g.ID)
			}
		}
		if n != 1 {
			t.Errorf("re-armed dialog handed out %d times, want once", n)
		}
	})

	t.Run("Expires", func(t *testing.T) {
		ds := open(t).Dialogs()
		d := newDialog(t, "d")
		d.Expires = time.Now().Add(150 * time.Millisecond)
		if err := ds.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "dialog expired", func() bool {
			_, err := ds.Get(ctx, d.ID)
			return errors.Is(err, store.ErrDialogNotFound)
		})
	})
}
