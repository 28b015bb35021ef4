package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

func TestStreamDeliversEveryReplyInOrder(t *testing.T) {
	srv := testutil.NATS(t)
	role := testutil.Conn(t, srv.ClientURL())
	edge := testutil.Conn(t, srv.ClientURL())
	_, err := role.QueueSubscribe(wire.SIPRequest(wire.RoleUAS, "INVITE"), "uas", func(m *nats.Msg) {
		if m.Header.Get(wire.HdrEdge) != "e1" {
			t.Errorf("header lost: %v", m.Header)
		}
		for _, code := range []string{"100", "180", "183", "200"} {
			_ = m.Respond([]byte(code))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	role.Flush()
	s, err := bus.NewStreamer(edge)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 20 {
		st, err := s.Open(wire.SIPRequest(wire.RoleUAS, "INVITE"), nats.Header{wire.HdrEdge: {"e1"}}, []byte("INVITE"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"100", "180", "183", "200"} {
			m, err := st.Next(ctx)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if string(m.Data) != want {
				t.Fatalf("request %d: got %s, want %s", i, m.Data, want)
			}
		}
		st.Close()
	}
}

func TestStreamNoResponders(t *testing.T) {
	srv := testutil.NATS(t)
	s, err := bus.NewStreamer(testutil.Conn(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Open(wire.SIPRequest("nobody", "OPTIONS"), nil, []byte("OPTIONS"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The server answers no-responders itself; a 1 s bound shows it did not
	// come from a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := st.Next(ctx); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("got %v, want ErrNoResponders", err)
	}
}

func TestStreamLateReplyAfterClose(t *testing.T) {
	srv := testutil.NATS(t)
	role := testutil.Conn(t, srv.ClientURL())
	release := make(chan struct{})
	_, _ = role.Subscribe("slow", func(m *nats.Msg) {
		<-release
		_ = m.Respond([]byte("late"))
	})
	role.Flush()
	s, err := bus.NewStreamer(testutil.Conn(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Open("slow", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	close(release)
	// The streamer keeps working for the next stream after dropping the late reply.
	_, _ = role.Subscribe("fast", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	role.Flush()
	st2, err := s.Open("fast", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := st2.Next(ctx)
	if err != nil || string(m.Data) != "ok" {
		t.Fatalf("got %v %v, want ok", m, err)
	}
}

func TestEmbeddedServer(t *testing.T) {
	emb, err := bus.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	a, err := emb.Connect("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := emb.Connect("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, _ = a.Subscribe("ping", func(m *nats.Msg) { _ = m.Respond([]byte(fmt.Sprintf("pong %s", m.Data))) })
	a.Flush()
	m, err := b.Request("ping", []byte("1"), 5*time.Second)
	if err != nil || string(m.Data) != "pong 1" {
		t.Fatalf("got %v %v", m, err)
	}
}
