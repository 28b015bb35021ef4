package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// ErrNoResponders means nobody subscribes to the subject: the role is not running.
// The NATS server says so at once, so callers can answer 503 without waiting.
var ErrNoResponders = errors.New("bus: no responders")

// Streamer sends requests whose replies arrive as a stream: a SIP request can get
// 100, 180, 183 and 200 back. nats.go's Request returns only the first reply, so
// the streamer keeps one wildcard subscription on its own inbox prefix and hands
// each reply to the stream its token names. One subscription delivers in order,
// so the replies of one stream arrive in the order they were published.
type Streamer struct {
	nc     *nats.Conn
	prefix string
	sub    *nats.Subscription
	seq    atomic.Uint64

	mu   sync.Mutex
	open map[string]*Stream
}

// NewStreamer subscribes to a fresh inbox prefix on nc.
func NewStreamer(nc *nats.Conn) (*Streamer, error) {
	s := &Streamer{nc: nc, prefix: nc.NewInbox() + ".", open: map[string]*Stream{}}
	sub, err := nc.Subscribe(s.prefix+"*", s.dispatch)
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe reply inbox: %w", err)
	}
	// A burst must never be dropped as a slow consumer: a lost final response
	// would leave a SIP transaction unanswered.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("bus: reply inbox limits: %w", err)
	}
	s.sub = sub
	return s, nil
}

// Close stops receiving replies.
func (s *Streamer) Close() error { return s.sub.Unsubscribe() }

func (s *Streamer) dispatch(m *nats.Msg) {
	if AnswerProbe(m) {
		return // any stream, open or not, answers for the whole inbox
	}
	token := m.Subject[len(s.prefix):]
	s.mu.Lock()
	st := s.open[token]
	s.mu.Unlock()
	if st == nil {
		return // the stream ended: a late reply has nobody to go to
	}
	select {
	case st.c <- m:
	case <-st.done:
	}
}

// Open publishes data with headers on subject and returns the stream its replies
// arrive on. The caller must Close the stream.
func (s *Streamer) Open(subject string, hdr nats.Header, data []byte) (*Stream, error) {
	token := strconv.FormatUint(s.seq.Add(1), 36)
	st := &Stream{s: s, token: token, c: make(chan *nats.Msg, 8), done: make(chan struct{})}
	s.mu.Lock()
	s.open[token] = st
	s.mu.Unlock()
	err := s.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: s.prefix + token, Header: hdr, Data: data})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return st, nil
}

// Stream is the replies to one request.
type Stream struct {
	s     *Streamer
	token string
	c     chan *nats.Msg
	done  chan struct{}
	once  sync.Once
}

// ErrClosed is what Next returns once the stream is closed.
var ErrClosed = errors.New("bus: stream closed")

// Next waits for the next reply. It returns ErrNoResponders when nobody listened,
// ErrClosed once another goroutine closed the stream, and ctx's error when ctx
// ends first.
func (st *Stream) Next(ctx context.Context) (*nats.Msg, error) {
	select {
	case m := <-st.c:
		if IsNoResponders(m) {
			return nil, ErrNoResponders
		}
		return m, nil
	case <-st.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// C exposes the raw reply channel, for callers that select on more than a context.
// Messages read from it are not checked for no-responders; use IsNoResponders.
func (st *Stream) C() <-chan *nats.Msg { return st.c }

// AnswerProbe answers m when it is an edge's liveness check (wire.HdrProbe)
// and reports whether it was: whoever has INVITEs in flight at an edge (an
// asker's inbox, a replica holding INVITEs) must answer, or be taken for gone.
func AnswerProbe(m *nats.Msg) bool {
	if m.Reply == "" || m.Header.Get(wire.HdrProbe) == "" {
		return false
	}
	_ = m.Respond(nil)
	return true
}

// IsNoResponders reports whether m is the server's no-responders status.
func IsNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get(wire.HdrStatus) == wire.StatusNoResponders
}

// Close ends the stream; later replies to it are dropped.
func (st *Stream) Close() {
	st.once.Do(func() {
		st.s.mu.Lock()
		delete(st.s.open, st.token)
		st.s.mu.Unlock()
		close(st.done)
	})
}
