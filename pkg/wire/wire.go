// Package wire is the bus contract, version 1: every NATS subject and header that
// siphon processes exchange is declared here and nowhere else.
//
// A SIP message travels as its own bytes in the NATS payload; the facts about the
// transport it came over (or must leave by) travel as NATS headers. So
// `nats sub 'siphon.>'` shows readable SIP, and nothing is JSON-escaped on the hot path.
package wire

import (
	"fmt"
	"strings"
)

// Subjects. A template (suffix T) is completed with Subject; its wildcard sits beside it.
const (
	// SIPRequestT carries a SIP request from an edge to a role: role, then the
	// lower-case method. Roles subscribe in a queue group named after the role, so
	// each request reaches one replica. The reply inbox receives every response the
	// role produces (1xx..6xx); a final response ends the exchange.
	SIPRequestT = "siphon.v1.sip.%s.%s"
	// SIPRequestAll matches every request for every role.
	SIPRequestAll = "siphon.v1.sip.>"

	// EdgeSendT reaches one edge by its id: what must leave over a flow that edge
	// owns (a TCP/TLS/WS connection) is sent here.
	EdgeSendT = "siphon.v1.edge.%s.send"
	// EdgeSendAny reaches any edge (queue group "edge"); used when no flow is pinned.
	EdgeSendAny = "siphon.v1.edge.send"
	// EdgeSendAll matches the per-edge send subjects.
	EdgeSendAll = "siphon.v1.edge.*.send"

	// ReplicaT reaches one replica of a role directly: role, then the replica's
	// id (which the replica puts on its responses as HdrReplica). The edge passes
	// a CANCEL here to the replica holding the INVITE; a uas replica passes a
	// PRACK it answered to the replica holding the INVITE it acknowledges.
	ReplicaT = "siphon.v1.replica.%s.%s"

	// EventT is a state change announced by a source role: source, then the event
	// name (for example "registrar", "binding.added"). JSON payload, no reply.
	EventT = "siphon.v1.event.%s.%s"
	// EventAll matches every event.
	EventAll = "siphon.v1.event.>"
)

// Queue groups: one per role, so replicas of a role share its requests.
const (
	// QueueEdge is the queue group of the edges on EdgeSendAny.
	QueueEdge = "edge"
)

// Headers carried on bus messages.
const (
	// HdrEdge is the id of the edge that received the request (edge → role), or
	// that must send a message (role → edge, informative).
	HdrEdge = "Siphon-Edge"
	// HdrTransport is the SIP transport the request came over or must leave by:
	// udp, tcp, tls, ws or wss.
	HdrTransport = "Siphon-Transport"
	// HdrRemote is the peer's address as host:port (the packet source).
	HdrRemote = "Siphon-Remote"
	// HdrLocal is the edge's own address the request arrived on, as host:port.
	HdrLocal = "Siphon-Local"
	// HdrFlow names a connection-oriented flow at its edge as transport:remote
	// (for example "tcp:10.0.0.7:49152"). Messages that must go back over that
	// connection carry it, and are sent to the edge named by HdrEdge.
	HdrFlow = "Siphon-Flow"
	// HdrTx is the edge's server transaction key for a request (edge → role); a
	// CANCEL names the transaction it cancels with it.
	HdrTx = "Siphon-Tx"
	// HdrReplica is the id of the role replica that sent a response (role →
	// edge); ReplicaT with it reaches that replica.
	HdrReplica = "Siphon-Replica"
	// HdrDest overrides where a message sent through the edge goes, as
	// transport:host:port (role → edge). Without it the edge routes by the SIP rules.
	HdrDest = "Siphon-Dest"
	// HdrMode is the siphond mode the edge runs (edge → role), so a role can check
	// it was started with the same one.
	HdrMode = "Siphon-Mode"
	// HdrError explains, in one line, why the edge answered a send with a
	// synthesized response (edge → role), for example "timeout" or "transport".
	HdrError = "Siphon-Error"
	// HdrStatus is set by the NATS server itself: "503" on an empty message means
	// no subscriber was listening on the subject (no responders).
	HdrStatus = "Status"
)

// StatusNoResponders is HdrStatus's value when nobody listened on the subject.
const StatusNoResponders = "503"

// SIPRequest is the subject on which role receives requests of method. Callers on
// a hot path compute it once per (role, method).
func SIPRequest(role, method string) string {
	return fmt.Sprintf(SIPRequestT, role, strings.ToLower(method))
}

// EdgeSend is the send subject of one edge.
func EdgeSend(edgeID string) string {
	return fmt.Sprintf(EdgeSendT, edgeID)
}

// Replica is the subject that reaches one replica of role.
func Replica(role, id string) string {
	return fmt.Sprintf(ReplicaT, role, id)
}

// Event is the subject of an event named name from source.
func Event(source, name string) string {
	return fmt.Sprintf(EventT, source, name)
}

// Flow names a flow for HdrFlow.
func Flow(transport, remote string) string {
	return strings.ToLower(transport) + ":" + remote
}

// SplitFlow undoes Flow. ok is false when s is not a flow name.
func SplitFlow(s string) (transport, remote string, ok bool) {
	transport, remote, ok = strings.Cut(s, ":")
	return transport, remote, ok && transport != "" && remote != ""
}
