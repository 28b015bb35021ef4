package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measureEvents adds the subscribe mode's other figures to the set-up's
// report: one PUBLISH fanned out to p.watchers subscribers of one resource
// (time from the PUBLISH until the last NOTIFY is answered), and the memory
// p.held subscriptions take (Redis's used_memory in multi, the process's RSS
// embedded).
func (p params) measureEvents(s *setup) error {
	w, err := newWatcher(s.sip)
	if err != nil {
		return err
	}
	defer w.close()
	fmt.Fprintf(os.Stderr, "   fan-out: %d watchers of sip:fanout@example.com\n", p.watchers)
	if err := w.subscribeAll("fanout", p.watchers, false, 2000); err != nil {
		return err
	}
	took, err := w.publishAndWait("sip:fanout@example.com", p.watchers)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   fan-out: last NOTIFY answered %v after the PUBLISH\n", took)
	var b strings.Builder
	fmt.Fprintf(&b, "Fan-out: one PUBLISH to sip:fanout@example.com, watched by %d subscribers (one UDP socket, a dialog each): "+
		"**%d ms** from the PUBLISH sent until the last subscriber's NOTIFY was answered.\n\n", p.watchers, took.Milliseconds())

	before, what, err := s.memory()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   holding %d subscriptions, one resource each\n", p.held)
	start := time.Now()
	if err := w.subscribeAll("held", p.held, true, 2000); err != nil {
		return err
	}
	after, _, err := s.memory()
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(p.held)
	fmt.Fprintf(os.Stderr, "   held %d in %v: %.0f bytes each (%s)\n", p.held, time.Since(start).Round(time.Second), per, what)
	fmt.Fprintf(&b, "Held: %d subscriptions (SUBSCRIBE presence, Expires: 3600, each to its own resource, its NOTIFY answered) "+
		"take **%.0f bytes each** (%s, before and after).\n\n", p.held, per, what)
	s.events = b.String()
	return nil
}

// memory is what the set-up's state takes: Redis's used_memory when it has
// one, else the siphond process's resident set.
func (s *setup) memory() (int64, string, error) {
	if s.redis != "" {
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", s.redis[strings.LastIndex(s.redis, ":")+1:], "info", "memory").Output()
		if err != nil {
			return 0, "", fmt.Errorf("redis-cli info memory: %w", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				return n, "Redis used_memory", err
			}
		}
		return 0, "", fmt.Errorf("redis-cli info memory: no used_memory")
	}
	// The live heap after a collection: the resident set also holds the
	// garbage a GOGC=100 heap lets grow to the size of the live one.
	res, err := http.Get("http://" + s.metrics + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	res, err = http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_alloc_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), "siphond's live Go heap after a collection, in-memory store, every role included", err
		}
	}
	return 0, "", fmt.Errorf("no go_memstats_heap_alloc_bytes at %s", s.metrics)
}

// watcher is many subscribers on one UDP socket, written by hand: the bench
// module keeps to the standard library, and a subscriber needs only to send
// SUBSCRIBE and PUBLISH and answer NOTIFY.
type watcher struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	local  string

	mu       sync.Mutex
	answered map[string]bool // Call-IDs whose SUBSCRIBE got its 200
	notified map[string]bool // Call-IDs whose NOTIFY (any) was answered
	marked   map[string]bool // Call-IDs whose NOTIFY carried mark, answered
	mark     string
	last     time.Time // when the last marked NOTIFY was answered
	finals   map[string]int
	// sent and complete count SUBSCRIBEs sent and those with their 200 and
	// a NOTIFY answered.
	sent, complete int
	changed        chan struct{}
}

func newWatcher(server string) (*watcher, error) {
	addr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(8 << 20)
	w := &watcher{conn: conn, server: addr, local: conn.LocalAddr().String(), answered: map[string]bool{}, notified: map[string]bool{},
		marked: map[string]bool{}, finals: map[string]int{}, changed: make(chan struct{}, 1)}
	go w.read()
	return w, nil
}

func (w *watcher) close() { _ = w.conn.Close() }

func (w *watcher) read() {
	buf := make([]byte, 65535)
	for {
		n, _, err := w.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		head, body, _ := strings.Cut(msg, "\r\n\r\n")
		lines := strings.Split(head, "\r\n")
		callID := header(lines, "Call-ID", "i")
		if strings.HasPrefix(lines[0], "SIP/2.0 ") {
			code, _ := strconv.Atoi(strings.Fields(lines[0])[1])
			if code >= 200 {
				w.mu.Lock()
				if strings.HasSuffix(header(lines, "CSeq", ""), "SUBSCRIBE") && code == 200 && !w.answered[callID] {
					w.answered[callID] = true
					if w.notified[callID] {
						w.complete++
					}
				}
				w.finals[callID] = code
				w.mu.Unlock()
				w.poke()
			}
			continue
		}
		if !strings.HasPrefix(lines[0], "NOTIFY ") {
			continue
		}
		var res strings.Builder
		res.WriteString("SIP/2.0 200 OK\r\n")
		for _, l := range lines[1:] {
			name := strings.ToLower(strings.TrimSpace(l[:max(0, strings.Index(l, ":"))]))
			switch name {
			case "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq":
				res.WriteString(l + "\r\n")
			}
		}
		res.WriteString("Content-Length: 0\r\n\r\n")
		_, _ = w.conn.WriteToUDP([]byte(res.String()), w.server)
		w.mu.Lock()
		if !w.notified[callID] {
			w.notified[callID] = true
			if w.answered[callID] {
				w.complete++
			}
		}
		if w.mark != "" && strings.Contains(body, w.mark) && !w.marked[callID] {
			w.marked[callID] = true
			w.last = time.Now()
		}
		w.mu.Unlock()
		w.poke()
	}
}

func (w *watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func header(lines []string, name, short string) string {
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		k = strings.TrimSpace(k)
		if ok && (strings.EqualFold(k, name) || (short != "" && strings.EqualFold(k, short))) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitUntil waits for cond (read under w.mu) for up to within.
func (w *watcher) waitUntil(within time.Duration, what string, cond func() bool) error {
	deadline := time.After(within)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-w.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("bench: %s not within %v", what, within)
		}
	}
}

func (w *watcher) send(req string) error {
	_, err := w.conn.WriteToUDP([]byte(req), w.server)
	return err
}

// subscribeAll makes n subscriptions to presence, to sip:<name>@example.com
// or, when each, to sip:<name><i>@example.com, sending at most rate per
// second with at most 500 unfinished, and waits until each has its 200 and
// its NOTIFY answered.
func (w *watcher) subscribeAll(name string, n int, each bool, rate int) error {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	w.mu.Lock()
	base := w.complete
	w.mu.Unlock()
	for i := range n {
		<-tick.C
		if err := w.waitUntil(30*time.Second, "a free window", func() bool { return w.sent-w.complete < 500 }); err != nil {
			return err
		}
		user := name
		if each {
			user += strconv.Itoa(i)
		}
		callID := name + "-" + strconv.Itoa(i) + "@bench"
		req := "SUBSCRIBE sip:" + user + "@example.com SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + w.local + ";branch=z9hG4bK-" + callID + ";rport\r\n" +
			"From: <sip:watcher@" + w.local + ">;tag=w" + strconv.Itoa(i) + "\r\n" +
			"To: <sip:" + user + "@example.com>\r\nCall-ID: " + callID + "\r\nCSeq: 1 SUBSCRIBE\r\n" +
			"Contact: <sip:watcher@" + w.local + ">\r\nEvent: presence\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
		w.mu.Lock()
		w.sent++
		w.mu.Unlock()
		if err := w.send(req); err != nil {
			return err
		}
	}
	return w.waitUntil(60*time.Second, fmt.Sprintf("%d subscriptions answered and notified", n), func() bool {
		return w.complete-base == n
	})
}

// publishAndWait publishes a PIDF for resource with a mark of its own and
// returns the time from sending it until the last of watchers NOTIFYs with
// that mark was answered.
func (w *watcher) publishAndWait(resource string, watchers int) (time.Duration, error) {
	w.mu.Lock()
	w.mark = "fanout-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	mark := w.mark
	w.mu.Unlock()
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\r\n" + `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="` + resource + `">` +
		`<tuple id="bench"><status><basic>open</basic></status><note>` + mark + `</note></tuple></presence>` + "\r\n"
	callID := mark + "@bench"
	req := "PUBLISH " + resource + " SIP/2.0\r\nVia: SIP/2.0/UDP " + w.local + ";branch=z9hG4bK-" + mark + ";rport\r\n" +
		"From: <sip:publisher@" + w.local + ">;tag=pub\r\nTo: <" + resource + ">\r\nCall-ID: " + callID + "\r\nCSeq: 1 PUBLISH\r\n" +
		"Event: presence\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Type: application/pidf+xml\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	start := time.Now()
	if err := w.send(req); err != nil {
		return 0, err
	}
	err := w.waitUntil(60*time.Second, fmt.Sprintf("the PUBLISH's NOTIFY at all %d watchers", watchers), func() bool {
		return w.finals[callID] == 200 && len(w.marked) == watchers
	})
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last.Sub(start), nil
}
