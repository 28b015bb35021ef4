// Package bus connects siphon processes over NATS: the embedded server for the
// one-process default, connections to a real server, streamed request/reply (one
// request, many responses), and role services built on nats.go's micro package.
package bus

import (
	"errors"
	"fmt"
	"log/slog"
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

// Dial connects to a NATS server by URL. It keeps retrying in the background when
// the server is not up yet or goes away, so a lab can start in any order; /readyz
// reports whether the connection is up.
func Dial(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "url", url, "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s to %s: %w", name, url, err)
	}
	return nc, nil
}
