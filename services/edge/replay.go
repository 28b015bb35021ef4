package edge

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// timerJ is how long a non-INVITE server transaction over UDP must absorb
// retransmissions of its request after the final response (64*T1, RFC 3261
// §17.2.2).
const timerJ = 32 * time.Second

// replayCache does the work of Timer J for non-INVITE requests over UDP without
// keeping sipgo's transaction alive for it. sipgo would hold the parsed request,
// the response and their timers for 32 s: at 10,000 requests a second that is
// about a gigabyte of pointer-rich heap, and collecting it stalls the edge. The
// cache keeps only the final response's bytes by transaction key; the edge's
// read filter answers a retransmission from it before sipgo parses anything,
// and the transaction itself ends as soon as its final response is sent.
type replayCache struct {
	mu      sync.Mutex
	entries map[string][]byte // nil: the request is still with its role
	// ring holds the keys added in each of the last len(ring) seconds; the
	// oldest second is dropped as the clock moves on.
	ring     [][]string
	head     int
	stop     chan struct{}
	stopOnce sync.Once
}

func newReplayCache() *replayCache {
	c := &replayCache{
		entries: map[string][]byte{},
		ring:    make([][]string, int(timerJ/time.Second)+2),
		stop:    make(chan struct{}),
	}
	go c.rotate()
	return c
}

func (c *replayCache) rotate() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.advance()
		}
	}
}

// advance moves to the next second, dropping the keys added a ring ago.
func (c *replayCache) advance() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head = (c.head + 1) % len(c.ring)
	for _, k := range c.ring[c.head] {
		delete(c.entries, k)
	}
	c.ring[c.head] = c.ring[c.head][:0]
}

func (c *replayCache) close() { c.stopOnce.Do(func() { close(c.stop) }) }

// lookup reports whether key is a known transaction, and its final response
// (nil while the role has not answered).
func (c *replayCache) lookup(key string) (response []byte, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	response, known = c.entries[key]
	return response, known
}

// pending records that key's request went to its role.
func (c *replayCache) pending(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		c.entries[key] = nil
		c.ring[c.head] = append(c.ring[c.head], key)
	}
}

// complete stores key's final response.
func (c *replayCache) complete(key string, response []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		c.ring[c.head] = append(c.ring[c.head], key)
	}
	c.entries[key] = response
}

// replayKey is the RFC 3261 §17.2.3 match: top Via branch and sent-by, and the
// method. The raw and the parsed forms of a request give the same key.
func replayKey(branch, host string, port int, method string) string {
	host = strings.ToLower(strings.Trim(host, "[]"))
	return branch + "\x00" + host + ":" + strconv.Itoa(port) + "\x00" + method
}

// replayable says whether the cache serves this request: non-INVITE over UDP
// (ACK has no response; INVITE transactions stay with sipgo).
func replayable(transport, method string) bool {
	return strings.EqualFold(transport, UDP) && method != "INVITE" && method != "ACK"
}

// rawReplayKey is replayKey from a checked datagram; "" when the top Via has no
// branch.
func rawReplayKey(m *rawMsg) string {
	vias := m.all("via")
	if len(vias) == 0 {
		return ""
	}
	top := splitOutside(vias[0], ',')[0]
	proto, params, _ := strings.Cut(top, ";")
	parts := strings.SplitN(proto, "/", 3)
	if len(parts) != 3 {
		return ""
	}
	f := strings.Fields(parts[2])
	if len(f) != 2 {
		return ""
	}
	host, port := f[1], 0
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		port, _ = strconv.Atoi(host[i+1:])
		host = host[:i]
	}
	for _, p := range splitOutside(params, ';') {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "branch") {
			return replayKey(strings.TrimSpace(v), host, port, m.method)
		}
	}
	return ""
}

// parsedReplayKey is replayKey from a request sipgo parsed.
func parsedReplayKey(req *sip.Request) string {
	via := req.Via()
	if via == nil {
		return ""
	}
	branch, _ := via.Params.Get("branch")
	if branch == "" {
		return ""
	}
	return replayKey(branch, via.Host, via.Port, string(req.Method))
}
