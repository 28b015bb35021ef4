package edge

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
)

// readFilter sees every datagram before sipgo parses it. A malformed request is
// answered here (400, 416 or 505 with a Warning) and a malformed response dropped,
// so sipgo only ever gets what the RFC grammar allows. Stream transports pass
// through: their reads are not message-aligned, and sipgo closes a stream whose
// framing breaks.
func (e *Edge) readFilter(props sip.TransportReadProps, data []byte) ([]byte, error) {
	if !strings.EqualFold(props.Transport, UDP) || isKeepAlive(data) {
		return data, nil
	}
	out, resp := e.inspect(data, props.RemoteAddr)
	if resp != nil {
		if err := e.writeUDP(resp, props.RemoteAddr); err != nil {
			// Most often an answer echoing a huge Via past a datagram's
			// 65,507 bytes: the request is dropped after all, and counted.
			e.log.Debug("answer to a datagram failed", "remote", props.RemoteAddr, "error", err)
			e.metrics.Dropped.WithLabelValues("unanswerable").Inc()
		}
	}
	return out, nil
}

// udpConn is the edge's UDP socket, nil before it listens.
func (e *Edge) udpConn() net.PacketConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.udp
}

// writeUDP sends a datagram from the edge's UDP socket.
func (e *Edge) writeUDP(data []byte, to net.Addr) error {
	conn := e.udpConn()
	if conn == nil {
		return nil // no socket: a test of the filter alone
	}
	_, err := conn.WriteTo(data, to)
	return err
}

// inspect decides what happens to one datagram: out is what goes on to sipgo
// (nil to drop it), resp the answer to send back, if any. No input panics it.
func (e *Edge) inspect(data []byte, remote net.Addr) (out, resp []byte) {
	m, v := splitRaw(data)
	if v.code == 0 && m.request {
		v = m.check()
	}
	if len(data) > e.cfg.MaxMessageSize {
		v = tooLarge(len(data), e.cfg.MaxMessageSize)
	}
	if v.code == 0 && m.request && m.method == "CANCEL" && remote != nil {
		if e.interceptCancel(data, UDP, remote, func(resp []byte) error { return e.writeUDP(resp, remote) }) {
			return nil, nil
		}
	}
	if m.request && m.method != "ACK" && m.method != "CANCEL" {
		if v.code == 0 && e.replay != nil && replayable(UDP, m.method) {
			if key := rawReplayKey(m); key != "" {
				if resp, known := e.replay.lookup(key); known {
					// A retransmission: answered from the cache, or absorbed
					// while its role is still on it.
					e.metrics.Dropped.WithLabelValues("retransmission").Inc()
					return nil, resp
				}
			}
		}
		// The token is taken before any answer is made, a 400 or a 513
		// too: a spoofed flood of bad requests gets no reflection past
		// the limit. ACK and CANCEL belong to transactions let in already.
		if !e.udpLimit.allow(sourceIP(remote)) {
			e.warnOverLimit(UDP, remote)
			return nil, e.overLimit(m, UDP)
		}
	}
	if v.code == 0 {
		return data, nil
	}
	if !m.request || m.method == "ACK" {
		// A response, or an ACK, is never answered (RFC 3261 §17).
		reason := "malformed-response"
		switch {
		case v.code == 513:
			reason = "too-large"
		case m.request:
			reason = "malformed-ack"
		}
		e.metrics.Dropped.WithLabelValues(reason).Inc()
		return nil, nil
	}
	resp = rawResponse(m, v, e.cfg.ID, e.ids.Tag())
	if resp == nil {
		e.metrics.Dropped.WithLabelValues("malformed-no-via").Inc()
		return nil, nil
	}
	e.metrics.Responses.WithLabelValues(mode.RoleEdge, methodLabel(m.method), obs.Code(v.code)).Inc()
	return nil, resp
}

// tooLarge is the 513 of RFC 3261 §21.5.14 for a message of size bytes.
func tooLarge(size, most int) verdict {
	return verdict{code: 513, reason: "Message Too Large",
		detail: "the message is " + strconv.Itoa(size) + " bytes; this edge takes at most " + strconv.Itoa(most) + " (--max-message-size)"}
}

// isKeepAlive is a CRLF keep-alive (RFC 5626 §3.5.1); sipgo handles those.
func isKeepAlive(data []byte) bool {
	return len(data) <= 4 && len(bytes.Trim(data, "\r\n")) == 0
}

// knownMethods bounds the method label: a flood of invented methods must not
// grow the metrics without end.
var knownMethods = map[string]bool{
	"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "OPTIONS": true, "REGISTER": true,
	"PRACK": true, "SUBSCRIBE": true, "NOTIFY": true, "PUBLISH": true, "INFO": true, "REFER": true,
	"MESSAGE": true, "UPDATE": true,
}

func methodLabel(method string) string {
	if knownMethods[method] {
		return method
	}
	return "other"
}
