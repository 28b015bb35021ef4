package edge

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Connection limits of the stream transports (TCP, TLS): how many
// connections in all and from one source IP (--max-connections,
// --max-connections-per-source; one over is closed at once), how long a
// connection may go with nothing read or written (--idle-timeout: a CRLF
// keep-alive of RFC 5626 §3.5.1 is a read, so a flow kept alive stays), and
// how long a message's headers may take to arrive once it has begun
// (--header-timeout: a slowloris sender is cut off).

// connCounter counts the open connections, in all and by source IP.
type connCounter struct {
	mu       sync.Mutex
	all      int
	bySource map[string]int
}

// admit counts a new connection from source, or says it is one too many.
func (c *connCounter) admit(source string, most, perSource int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (most > 0 && c.all >= most) || (perSource > 0 && c.bySource[source] >= perSource) {
		return false
	}
	if c.bySource == nil {
		c.bySource = map[string]int{}
	}
	c.all++
	c.bySource[source]++
	return true
}

// release uncounts a connection from source.
func (c *connCounter) release(source string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all--
	if c.bySource[source]--; c.bySource[source] <= 0 {
		delete(c.bySource, source)
	}
}

// open is the number of connections counted.
func (c *connCounter) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

// counted is a framed connection's place in the count: released once, on
// the first Close.
type counted struct {
	counter *connCounter
	source  string
	closed  atomic.Bool
}

func (c *counted) release() {
	if c != nil && c.closed.CompareAndSwap(false, true) {
		c.counter.release(c.source)
	}
}

// Close releases the connection's count, then closes it.
func (c *framedConn) Close() error {
	c.count.release()
	return c.Conn.Close()
}

// Write extends the idle deadline: a flow the edge sends on is in use.
func (c *framedConn) Write(p []byte) (int, error) {
	c.touch(false, false)
	return c.Conn.Write(p)
}

// touch sets the read deadline: the idle timeout from now or, while a
// message's headers are still coming, what is left of their header timeout
// if that is sooner. Reads say whether headers are partial (fromRead);
// writes leave that as it is.
func (c *framedConn) touch(partial, fromRead bool) {
	idle, header := c.e.cfg.IdleTimeout, c.e.cfg.HeaderTimeout
	if idle <= 0 && header <= 0 {
		return
	}
	c.dl.Lock()
	defer c.dl.Unlock()
	now := time.Now() // socket deadlines are wall-clock
	switch {
	case fromRead && c.upgrading:
		partial = true // a WebSocket's HTTP upgrade is its headers
	case !fromRead && c.upgrading:
		c.upgrading, c.headerSince = false, time.Time{} // the 101 went out
	}
	if fromRead {
		switch {
		case !partial:
			c.headerSince = time.Time{}
		case c.headerSince.IsZero():
			c.headerSince = now
		}
	}
	var deadline time.Time
	if idle > 0 {
		deadline = now.Add(idle)
	}
	if !c.headerSince.IsZero() && header > 0 {
		if d := c.headerSince.Add(header); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	_ = c.Conn.SetReadDeadline(deadline)
}

// timedOut counts why a connection's read deadline passed.
func (c *framedConn) timedOut(err error) {
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		return
	}
	reason := "idle-timeout"
	c.dl.Lock()
	if !c.headerSince.IsZero() {
		reason = "header-timeout"
	}
	c.dl.Unlock()
	c.e.metrics.Dropped.WithLabelValues(reason).Inc()
}

// warnConnections says, at most every limitWarnEvery, that connections are
// being refused and which flags decide it.
func (e *Edge) warnConnections(source string) {
	if e.connsWarned.due(e.clock.Now()) {
		e.log.Warn("TCP/TLS connections over the limit are closed at once: raise --max-connections or --max-connections-per-source (0: no limit)",
			"source", source, "open", e.conns.open())
	}
}
