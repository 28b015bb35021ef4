package edge

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
)

// Per-source limits, as Kamailio's pike module keeps them: a token bucket
// per source IP for UDP (--udp-rate-limit) and one per connection for TCP
// and TLS (--stream-rate-limit). Only requests count: responses belong to
// transactions the lab started, and a retransmission the replay cache
// answers costs next to nothing. Over the limit a request is dropped, or
// answered 503 with Retry-After (--rate-limit-action 503; RFC 3261
// §21.5.4), and counted either way.

// Rate-limit actions (--rate-limit-action).
const (
	LimitDrop = "drop"
	Limit503  = "503"
)

// sourceLimiter holds a bucket per source IP.
type sourceLimiter struct {
	limit rate.Limit
	burst int
	clock clockwork.Clock

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// maxSources bounds the buckets kept: past it, the idle ones (full again)
// are forgotten, so a flood from spoofed addresses cannot grow the map
// without end.
const maxSources = 1 << 16

func newSourceLimiter(perSecond, burst int, clock clockwork.Clock) *sourceLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &sourceLimiter{limit: rate.Limit(perSecond), burst: burst, clock: clock, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from source's bucket; a nil limiter allows everything.
func (l *sourceLimiter) allow(source string) bool {
	if l == nil {
		return true
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[source]
	if b == nil {
		if len(l.buckets) >= maxSources {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[source] = b
	}
	return b.AllowN(now, 1)
}

// sweep forgets the buckets that have filled up again: they are as a new
// source's would be. It runs at most once a second.
func (l *sourceLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	for src, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, src)
		}
	}
}

// sourceIP is the address part of a remote address: a UDP source's limit is
// per IP, whatever port it sends from.
func sourceIP(remote net.Addr) string {
	switch a := remote.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return remote.String()
	}
	return host
}

// overLimit answers or drops a request over its source's limit and counts
// it; resp is the 503 to send back, nil to drop.
func (e *Edge) overLimit(m *rawMsg, transport string) (resp []byte) {
	e.rateLimited.WithLabelValues(transport).Inc()
	if e.cfg.RateLimitAction != Limit503 || m.method == "ACK" {
		e.metrics.Dropped.WithLabelValues("rate-limited").Inc()
		return nil
	}
	v := verdict{code: 503, reason: "Service Unavailable", detail: "too many requests from this source (--" + limitFlag(transport) + ")"}
	resp = rawResponse(m, v, e.cfg.ID, e.ids.Tag(), "Retry-After: "+strconv.Itoa(retryAfterSeconds))
	if resp == nil {
		e.metrics.Dropped.WithLabelValues("rate-limited").Inc()
		return nil
	}
	e.metrics.Responses.WithLabelValues(mode.RoleEdge, methodLabel(m.method), obs.Code(503)).Inc()
	return resp
}

// retryAfterSeconds is the Retry-After of a 503 over the limit: a bucket
// refills within a second at any limit of 1/s or more.
const retryAfterSeconds = 1

func limitFlag(transport string) string {
	if transport == UDP {
		return "udp-rate-limit"
	}
	return "stream-rate-limit"
}

// warnOverLimit says, at most every limitWarnEvery, that requests are being
// refused and which flag decides it: a load test from one host hits the
// limit first.
func (e *Edge) warnOverLimit(transport string, remote net.Addr) {
	if e.limitWarned.due(e.clock.Now()) {
		e.log.Warn("requests over the per-source rate limit are refused: raise --"+limitFlag(transport)+" (0 turns it off) for load from one host",
			"transport", transport, "source", remote, "action", e.cfg.RateLimitAction)
	}
}

// warnEvery lets a warning through at most once per limitWarnEvery: a flood
// must not flood the log too.
type warnEvery struct{ last atomic.Int64 } // Unix ns of the last one let through

// due reports whether a warning may go out at now, and if so takes the turn.
func (w *warnEvery) due(now time.Time) bool {
	last := w.last.Load()
	return now.UnixNano()-last >= int64(limitWarnEvery) && w.last.CompareAndSwap(last, now.UnixNano())
}

const limitWarnEvery = 10 * time.Second

// overUserLimit counts req against its From user's --user-rate-limit from
// its source in the store, a one-second window every edge shares, and says
// whether it is over.
// A store that fails lets the request through: the limit guards the lab,
// it must not stop it.
func (e *Edge) overUserLimit(req *sip.Request) bool {
	if e.cfg.UserRateLimit <= 0 || e.eph == nil || (req.IsInvite() && req.To().Params.Has("tag")) {
		return false // a re-INVITE belongs to a call already let in
	}
	// The From is the sender's claim: counted with the source address, so
	// nobody elsewhere can spend alice's budget (as lock-outs, pkg/auth).
	from := req.From().Address
	source, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		source = req.Source()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := e.eph.Incr(ctx, "userlimit:"+source+" "+from.User+"@"+strings.ToLower(from.Host), time.Second)
	if err != nil {
		e.log.Warn("per-user limit not counted", "error", err)
		return false
	}
	if n <= int64(e.cfg.UserRateLimit) {
		return false
	}
	e.userLimited.WithLabelValues(string(req.Method)).Inc()
	return true
}
