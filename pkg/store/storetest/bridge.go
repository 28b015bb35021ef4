package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

func newBridge(t *testing.T, name string, due time.Time) *store.Bridge {
	return &store.Bridge{
		ID: key(t, name), State: store.BridgeEarly,
		A: store.Leg{CallID: "a-call@caller", LocalTag: "t1", RemoteTag: "caller-tag", LocalURI: "sip:bob@example.com",
			RemoteURI: "sip:alice@example.com", RemoteTarget: "sip:alice@192.0.2.1", RouteSet: []string{"<sip:p1.example;lr>"}, Edge: "edge-1", Transport: "udp"},
		B: store.Leg{CallID: "b-call@b2bua", LocalTag: "t1", LocalURI: "sip:alice@example.com", RemoteURI: "sip:bob@example.com",
			Edge: "edge-2", Transport: "tcp", Flow: "flow-1"},
		Created: time.Now(), Due: due, Expires: time.Now().Add(time.Hour),
	}
}

func bridgeSuite(t *testing.T, open func(t *testing.T) store.Backend) {
	ctx := context.Background()

	t.Run("BothLegsInOneCompareAndSet", func(t *testing.T) {
		bs := open(t).Bridges()
		b := newBridge(t, "b", time.Time{})
		if err := bs.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		again := *b
		if err := bs.Create(ctx, &again); !errors.Is(err, store.ErrBridgeExists) {
			t.Fatalf("second create: %v, want ErrBridgeExists", err)
		}
		x, _ := bs.Get(ctx, b.ID)
		y, _ := bs.Get(ctx, b.ID)
		x.A.RemoteCSeq, x.B.RemoteTag, x.State = 2, "callee-tag", store.BridgeConfirmed
		if err := bs.Update(ctx, x); err != nil {
			t.Fatal(err)
		}
		y.B.LocalCSeq = 5
		if err := bs.Update(ctx, y); !errors.Is(err, store.ErrBridgeConflict) {
			t.Fatalf("stale update: %v, want ErrBridgeConflict", err)
		}
		got, err := bs.Get(ctx, b.ID)
		if err != nil || got.A.RemoteCSeq != 2 || got.B.RemoteTag != "callee-tag" || got.B.LocalCSeq != 0 || got.A.RouteSet[0] != b.A.RouteSet[0] {
			t.Fatalf("got %+v %v", got, err)
		}
		if gone, err := bs.Delete(ctx, b.ID); err != nil || gone.ID != b.ID {
			t.Fatalf("delete: %v %v", gone, err)
		}
		if _, err := bs.Get(ctx, b.ID); !errors.Is(err, store.ErrBridgeNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})

	t.Run("DueOnceAcrossReplicas", func(t *testing.T) {
		bs := open(t).Bridges()
		mine := map[string]bool{}
		for i := range 12 {
			b := newBridge(t, "d"+string(rune('a'+i)), time.Now().Add(-time.Second))
			if err := bs.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
			mine[b.ID] = true
		}
		later := newBridge(t, "later", time.Now().Add(time.Hour))
		if err := bs.Create(ctx, later); err != nil {
			t.Fatal(err)
		}
		takenOnce(t, "due bridge", mine, later.ID, func() ([]string, error) {
			got, err := bs.Due(ctx, time.Now(), 2)
			var out []string
			for _, v := range got {
				out = append(out, v.ID)
			}
			return out, err
		})
	})
}
