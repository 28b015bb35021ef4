package redisstore_test

import (
	"context"
	"testing"

	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/store/redisstore"
	"github.com/siphon-lab/siphon/pkg/store/storetest"
	"github.com/siphon-lab/siphon/pkg/testutil"
)

// TestConformance runs the suite against a real redis-server.
func TestConformance(t *testing.T) {
	url := testutil.Redis(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := redisstore.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if err := b.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestPingFailsWhenRedisIsGone(t *testing.T) {
	b, err := redisstore.Open("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ping(context.Background()); err == nil {
		t.Fatal("ping to a closed port succeeded")
	}
}
