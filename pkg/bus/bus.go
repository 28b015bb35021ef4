// Package bus connects siphon processes over NATS: the embedded server for the
// one-process default, connections to a real server, streamed request/reply (one
// request, many responses), and role services built on nats.go's micro package.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxPayload bounds one bus message. SIP over UDP stays under 64 KiB; stream
// transports can carry more, so the bus allows some headroom.
const MaxPayload = 4 << 20

// Embedded is a nats-server running inside this process, reachable only by
// in-process connections. It is what runs when --nats is empty.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the in-process NATS server.
func StartEmbedded() (*Embedded, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "siphon-embedded",
		DontListen: true,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: MaxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: embedded nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("bus: embedded nats-server did not become ready in 10s")
	}
	return &Embedded{srv: srv}, nil
}

// Connect opens an in-process connection named name.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.srv), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s to embedded server: %w", name, err)
	}
	return nc, nil
}

// Shutdown stops the server.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Dial connects to a NATS server by URL. A lab starts in any order, so a
// server not up yet is waited for, every few seconds saying so and why (a
// role can only join once connected: micro needs the server's headers
// support); after the first connection it keeps reconnecting in the
// background, and /readyz reports whether the connection is up. ctx ends the
// wait.
func Dial(ctx context.Context, url, name string, log *slog.Logger) (*nats.Conn, error) {
	connected := make(chan struct{})
	var once sync.Once
	var lastErr atomic.Value // the last failed attempt's error, for the wait's report
	nc, err := nats.Connect(url,
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				lastErr.Store(err.Error())
			}
		}),
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ConnectHandler(func(*nats.Conn) { once.Do(func() { close(connected) }) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "url", url, "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			once.Do(func() { close(connected) }) // a first connection made by a retry
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s to %s: %w", name, url, err)
	}
	if nc.IsConnected() {
		return nc, nil
	}
	tick := time.NewTicker(waitReport)
	defer tick.Stop()
	for {
		select {
		case <-connected:
			return nc, nil
		case <-tick.C:
			why, _ := lastErr.Load().(string)
			if why == "" {
				why = "no answer yet"
			}
			log.Warn("waiting for NATS: is nats-server running there? (--nats)", "url", url, "error", why)
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("bus: %s never reached NATS at %s: %w", name, url, ctx.Err())
		}
	}
}

// waitReport is how often a wait for NATS says it is still waiting.
const waitReport = 3 * time.Second
