package edge

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
)

// Stream transports (TCP, TLS) deliver bytes, not messages, so the read filter
// cannot take a CANCEL before sipgo does there. The edge wraps every connection
// it accepts instead: reads are framed into whole messages (RFC 3261 §18.3:
// headers to the empty line, then Content-Length bytes), a CANCEL the edge
// takes is answered on the connection and left out, and everything else goes
// to sipgo unchanged. Framing it cannot follow (no empty line within
// maxHeader bytes, a bad Content-Length) turns the connection transparent:
// sipgo then sees exactly what came, as before, and deals with it.

// maxHeader bounds how much the framing buffers looking for a header's end.
const maxHeader = 64 << 10

type streamListener struct {
	net.Listener
	e         *Edge
	transport string
	unframed  bool // WebSocket: bytes pass as they come
}

// streamListener wraps ln so the edge sees each message on its connections first.
func (e *Edge) streamListener(ln net.Listener, transport string) net.Listener {
	return &streamListener{Listener: ln, e: e, transport: transport}
}

// wsListener counts and times out WebSocket connections as the stream
// transports' are, without the framing: a WebSocket frames each message
// itself (RFC 7118 §4.1), and sipgo reads the frames.
func (e *Edge) wsListener(ln net.Listener, transport string) net.Listener {
	return &streamListener{Listener: ln, e: e, transport: transport, unframed: true}
}

func (l *streamListener) Accept() (net.Conn, error) {
	var c net.Conn
	var source string
	for {
		var err error
		if c, err = l.Listener.Accept(); err != nil {
			return nil, err
		}
		source = sourceIP(c.RemoteAddr())
		if l.e.conns.admit(source, l.e.cfg.MaxConnections, l.e.cfg.MaxConnectionsPerSource) {
			break
		}
		// One too many: closed at once, not handed to sipgo.
		_ = c.Close()
		l.e.metrics.Dropped.WithLabelValues("too-many-connections").Inc()
		l.e.warnConnections(source)
	}
	fc := &framedConn{Conn: c, e: l.e, transport: l.transport, buf: make([]byte, 64<<10),
		count: &counted{counter: &l.e.conns, source: source}, transparent: l.unframed, upgrading: l.unframed}
	fc.touch(false, true)
	if n := l.e.cfg.StreamRateLimit; n > 0 && !l.unframed {
		fc.limit = rate.NewLimiter(rate.Limit(n), l.e.cfg.burst(n))
	}
	return fc, nil
}

// framedConn is one accepted connection, read through the edge's framing.
type framedConn struct {
	net.Conn
	e           *Edge
	transport   string
	buf         []byte // read buffer
	in          []byte // read, not yet framed
	out         []byte // framed, not yet handed to sipgo
	transparent bool
	skip        int           // bytes still to come of a message answered 513, to drop
	limit       *rate.Limiter // --stream-rate-limit, nil when off
	count       *counted      // its place in --max-connections

	dl          sync.Mutex // guards headerSince and upgrading, for Read and Write
	headerSince time.Time  // when the headers now coming began, zero between messages
	upgrading   bool       // a WebSocket before its 101: --header-timeout bounds the upgrade
}

func (c *framedConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.transparent && len(c.in) > 0 {
			c.out, c.in = c.in, nil
			break
		}
		c.touch(!c.transparent && c.skip == 0 && len(c.in) > 0 && !bytes.Contains(c.in, headerEnd), true)
		n, err := c.Conn.Read(c.buf)
		if err != nil {
			c.timedOut(err)
		}
		if n > 0 {
			if c.transparent {
				c.out = append(c.out[:0], c.buf[:n]...)
			} else {
				c.in = append(c.in, c.buf[:n]...)
				c.frame()
			}
		}
		if err != nil && len(c.out) == 0 {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// frame moves every whole message of c.in to c.out, but the CANCELs the edge takes.
func (c *framedConn) frame() {
	for len(c.in) > 0 {
		if c.skip > 0 {
			n := min(c.skip, len(c.in))
			c.in, c.skip = c.in[n:], c.skip-n
			continue
		}
		// CRLFs between messages are keep-alives (RFC 5626 §3.5.1): sipgo
		// answers a double CRLF, so they pass on as they came.
		if c.in[0] == '\r' || c.in[0] == '\n' {
			i := 0
			for i < len(c.in) && (c.in[i] == '\r' || c.in[i] == '\n') {
				i++
			}
			c.out = append(c.out, c.in[:i]...)
			c.in = c.in[i:]
			continue
		}
		end := bytes.Index(c.in, headerEnd)
		if end < 0 {
			if len(c.in) > maxHeader {
				c.giveUp()
			}
			return
		}
		length, ok := contentLength(c.in[:end])
		if !ok {
			c.giveUp()
			return
		}
		size := end + 4 + length
		if most := c.e.cfg.MaxMessageSize; size > most {
			// Too large to take, but framed: answered 513 (a response too is
			// dropped), its bytes skipped as they come, the connection kept.
			m, _ := splitRaw(c.in[:end+4])
			if resp := rawResponse(m, tooLarge(size, most), c.e.cfg.ID, c.e.ids.Tag()); m.request && m.method != "ACK" && resp != nil {
				_, _ = c.Conn.Write(resp)
				c.e.metrics.Responses.WithLabelValues(mode.RoleEdge, methodLabel(m.method), obs.Code(513)).Inc()
			} else {
				c.e.metrics.Dropped.WithLabelValues("too-large").Inc()
			}
			c.skip = size
			continue
		}
		if len(c.in) < size {
			return
		}
		msg := c.in[:size]
		if c.limit != nil && !bytes.HasPrefix(msg, []byte("SIP/")) && !bytes.HasPrefix(msg, []byte("ACK ")) &&
			!bytes.HasPrefix(msg, []byte("CANCEL ")) && !c.limit.AllowN(c.e.clock.Now(), 1) {
			c.e.warnOverLimit(c.transport, c.RemoteAddr())
			m, _ := splitRaw(msg)
			if resp := c.e.overLimit(m, c.transport); resp != nil {
				_, _ = c.Conn.Write(resp)
			}
			c.in = c.in[size:]
			continue
		}
		if !bytes.HasPrefix(msg, []byte("SIP/")) && c.refuseMalformed(msg) {
			c.in = c.in[size:]
			continue
		}
		if bytes.HasPrefix(msg, []byte("CANCEL ")) {
			write := func(resp []byte) error { _, err := c.Conn.Write(resp); return err }
			if c.e.interceptCancel(msg, c.transport, c.RemoteAddr(), write) {
				c.in = c.in[size:]
				continue
			}
		}
		c.out = append(c.out, msg...)
		c.in = c.in[size:]
	}
	if len(c.in) == 0 {
		c.in = c.in[:0:0] // let a large message's buffer go
	}
}

// refuseMalformed answers a request the grammar checks refuse (400, 416,
// 505, as over UDP) on the connection, which stays up for the next one; sipgo
// would have closed it. It reports whether msg was refused.
func (c *framedConn) refuseMalformed(msg []byte) bool {
	m, v := splitRaw(msg)
	if v.code == 0 && m.request {
		v = m.check()
	}
	if v.code == 0 || !m.request {
		return false
	}
	if m.method == "ACK" { // never answered (RFC 3261 §17)
		c.e.metrics.Dropped.WithLabelValues("malformed-ack").Inc()
		return true
	}
	resp := rawResponse(m, v, c.e.cfg.ID, c.e.ids.Tag())
	if resp == nil {
		c.e.metrics.Dropped.WithLabelValues("malformed-no-via").Inc()
		return true
	}
	_, _ = c.Conn.Write(resp)
	c.e.metrics.Responses.WithLabelValues(mode.RoleEdge, methodLabel(m.method), obs.Code(v.code)).Inc()
	return true
}

// giveUp hands everything on unframed from now on.
func (c *framedConn) giveUp() {
	c.transparent = true
	c.out = append(c.out, c.in...)
	c.in = nil
}

// headerEnd ends a message's header block (RFC 3261 §7).
var headerEnd = []byte("\r\n\r\n")

// maxBody bounds a Content-Length the framing follows: a larger message
// than --max-message-size is still framed (answered 513, its bytes
// skipped); past this the connection is not worth keeping.
const maxBody = 64 << 20

// contentLength reads Content-Length (or its compact form l) from a header
// block; a message without one has no body. ok is false where sipgo might
// frame it otherwise: a malformed or oversized value, or more than one. It
// scans the bytes in place: every message on a stream passes through here.
func contentLength(head []byte) (int, bool) {
	length, seen := 0, false
	lines := head
	if i := bytes.Index(lines, crlf); i >= 0 {
		lines = lines[i+2:] // past the start line
	} else {
		return 0, true
	}
	for len(lines) > 0 {
		line := lines
		if i := bytes.Index(lines, crlf); i >= 0 {
			line, lines = lines[:i], lines[i+2:]
		} else {
			lines = nil
		}
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue // a folded continuation belongs to the header above it
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if !bytes.EqualFold(name, contentLengthName) && !bytes.EqualFold(name, compactLength) {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(line[colon+1:])))
		if err != nil || n < 0 || n > maxBody || seen {
			return 0, false
		}
		length, seen = n, true
	}
	return length, true
}

var (
	crlf              = []byte("\r\n")
	contentLengthName = []byte("Content-Length")
	compactLength     = []byte("l")
)
