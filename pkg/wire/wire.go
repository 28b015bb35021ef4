// Package wire is the bus contract, version 1: every NATS subject, micro service
// and endpoint name, queue group, bus header, send-path error code and event
// (name and payload) that siphon processes exchange is declared here and nowhere
// else. A test (wire_test.go) fails when such a string appears in another package.
//
// A SIP message travels as its own bytes in the NATS payload; the facts about the
// transport it came over (or must leave by) travel as NATS headers. So
// `nats sub 'siphon.>'` shows readable SIP, and nothing is JSON-escaped on the hot path.
package wire

import (
	"fmt"
	"strings"
)

// Version is the contract version every micro service announces; subjects carry
// its major version as their second token (v1).
const Version = "1.0.0"

// Roles. A role's name is also its micro service name, its queue group and its
// token in subjects.
const (
	RoleEdge      = "edge"
	RoleRegistrar = "registrar"
	RoleProxy     = "proxy"
	RoleB2BUA     = "b2bua"
	RoleUAS       = "uas"
	RoleEvents    = "events"
	// RoleScenario is `siphond run`'s own: a scenario that receives
	// requests (expect request, respond) takes every method its edge gets.
	RoleScenario = "scenario"
)

// Subjects. A template (suffix T) is completed by the function of the same name
// without the T; its wildcard sits beside it.
const (
	// SIPRequestT carries a SIP request from an edge to a role: role, then the
	// lower-case method. Roles subscribe in the queue group named after the role,
	// so each request reaches one replica. The reply inbox receives every
	// response the role produces (1xx..6xx); a final response ends the exchange.
	SIPRequestT = "siphon.v1.sip.%s.%s"
	// SIPRequestAll matches every request for every role.
	SIPRequestAll = "siphon.v1.sip.>"
	// SIPRequestRoleT matches every request for one role.
	SIPRequestRoleT = "siphon.v1.sip.%s.>"

	// EdgeSendT reaches one edge by its id: what must leave over a flow that
	// edge owns (a TCP/TLS/WS connection) is sent here. See the send path below.
	EdgeSendT = "siphon.v1.edge.%s.send"
	// EdgeSendAny reaches any edge (queue group QueueEdge); used when no flow is pinned.
	EdgeSendAny = "siphon.v1.edge.send"
	// EdgeSendAll matches the per-edge send subjects.
	EdgeSendAll = "siphon.v1.edge.*.send"

	// EdgeCancelT reaches the edge named in a send-path response's HdrEdge: a
	// request carrying HdrBranch cancels that INVITE branch (RFC 3261 §9.1).
	EdgeCancelT = "siphon.v1.edge.%s.cancel"
	// EdgeCancelAll matches every edge's cancel subject.
	EdgeCancelAll = "siphon.v1.edge.*.cancel"

	// ReplicaT reaches one replica of a role directly: role, then the replica's
	// id (which the replica puts on its responses as HdrReplica). The edge passes
	// a CANCEL here to the replica holding the INVITE (matched by HdrTx); a uas
	// replica passes a PRACK it answered to the replica holding the INVITE.
	ReplicaT = "siphon.v1.replica.%s.%s"
	// ReplicaAll matches every replica subject.
	ReplicaAll = "siphon.v1.replica.>"

	// EventT is a state change announced by a source role: source, then the event
	// name (for example "registrar", "binding.added"). JSON payload, no reply.
	EventT = "siphon.v1.event.%s.%s"
	// EventSourceT matches every event of one source.
	EventSourceT = "siphon.v1.event.%s.>"
	// EventAll matches every event.
	EventAll = "siphon.v1.event.>"

	// A distributed scenario run (`siphond run FILE --nats URL`, workers
	// `siphond --role scenario --nats URL`); JSON payloads (pkg/scenario).
	//
	// ScenarioWorkers: the coordinator's roll call; every idle worker replies
	// with who it is (its id, its --scenario-actor, its edge's address).
	ScenarioWorkers = "siphon.v1.scenario.workers"
	// ScenarioWorkerT reaches one worker by id: its job (an actor and its
	// calls), answered at once; an empty request is a liveness check.
	ScenarioWorkerT = "siphon.v1.scenario.worker.%s"
	// ScenarioBarrierT: a worker's actor at a barrier of run (the run's id);
	// the coordinator replies once every party has come.
	ScenarioBarrierT = "siphon.v1.scenario.run.%s.barrier"
	// ScenarioCallT: a worker's result of one call of run, as it ends.
	ScenarioCallT = "siphon.v1.scenario.run.%s.call"
	// ScenarioDoneT: a worker has run its share of run.
	ScenarioDoneT = "siphon.v1.scenario.run.%s.done"
	// ScenarioRunAll matches every message of every run.
	ScenarioRunAll = "siphon.v1.scenario.run.>"
)

// Queue groups: one per role, named after it, so replicas of a role share its
// requests.
const (
	// QueueEdge is the queue group of the edges on EdgeSendAny.
	QueueEdge = RoleEdge
)

// Queue is the queue group of role's replicas.
func Queue(role string) string { return role }

// Micro services (nats.go's micro package) and their endpoints. Every role is a
// service named after the role (`nats micro ls` lists the replicas); the edge's
// own endpoints are these.
const (
	// ServiceEdge is the edge's micro service.
	ServiceEdge = RoleEdge
	// EndpointSend is an edge's own send subject (EdgeSendT).
	EndpointSend = "send"
	// EndpointSendAny is the shared send subject (EdgeSendAny).
	EndpointSendAny = "send-any"
	// EndpointCancel is an edge's cancel subject (EdgeCancelT).
	EndpointCancel = "cancel"
	// MetaEdgeID and MetaMode are the edge service's metadata keys: its id and mode.
	MetaEdgeID = "edge_id"
	MetaMode   = "mode"
)

// Headers carried on bus messages.
const (
	// HdrEdge is the id of the edge that received the request (edge → role), that
	// must send a message (role → edge, informative), or that holds the branch a
	// send-path response belongs to (edge → role).
	HdrEdge = "Siphon-Edge"
	// HdrTransport is the SIP transport the request came over or must leave by:
	// udp, tcp, tls, ws or wss.
	HdrTransport = "Siphon-Transport"
	// HdrRemote is the peer's address as host:port (the packet source).
	HdrRemote = "Siphon-Remote"
	// HdrLocal is the edge's own address the request arrived on, as host:port.
	HdrLocal = "Siphon-Local"
	// HdrAdvertise is the edge's address as UAs reach it (--advertise), when it
	// differs from HdrLocal — behind NAT or a container's published port: what
	// Record-Route, Contact and SDP must carry, and a Route naming it is ours.
	HdrAdvertise = "Siphon-Advertise"
	// HdrFlow names a connection-oriented flow at its edge as transport:remote
	// (for example "tcp:10.0.0.7:49152"). Messages that must go back over that
	// connection carry it, and are sent to the edge named by HdrEdge.
	HdrFlow = "Siphon-Flow"
	// HdrTx is the edge's server transaction key of an INVITE (edge → role); the
	// CANCEL the edge passes to the replica holding that INVITE carries the same
	// key, so a spiral with the same Call-ID and From tag cannot be confused.
	HdrTx = "Siphon-Tx"
	// HdrBranch names a client transaction at the edge named by HdrEdge (edge →
	// role, on every send-path response); a cancel request carries it back. On a
	// request to send (role → edge) it is the branch the edge's Via must carry:
	// a forwarding role derives it from the request for loop detection (RFC 3261
	// §16.6 step 8). Without it the edge makes one.
	HdrBranch = "Siphon-Branch"
	// HdrReplica is the id of the role replica that sent a response (role →
	// edge); ReplicaT with it reaches that replica.
	HdrReplica = "Siphon-Replica"
	// HdrDest overrides where a message sent through the edge goes, as
	// transport:host:port (role → edge). Without it the edge routes by the SIP rules.
	HdrDest = "Siphon-Dest"
	// HdrMode is the siphond mode the edge runs (edge → role), so a role serves
	// the mode of the edge a request came through.
	HdrMode = "Siphon-Mode"
	// HdrError is set on a SIP response the edge synthesized rather than received
	// (edge → role): one of the Err* codes below. The response's Warning says more.
	HdrError = "Siphon-Error"
	// HdrEnd marks the empty message that ends an INVITE's send-path stream: no
	// response can follow (at once after a non-2xx final; after a 2xx once RFC
	// 6026's Timer M has run out; or when the branch failed). Role → edge it
	// ends the 2xx responses a HdrMore announced.
	HdrEnd = "Siphon-End"
	// HdrUpstream is set on a request a role forwards (role → edge): the edge
	// it came in through, and after a space its flow when it came over a
	// connection ("edge-a tcp:192.0.2.7:49152"). A later 2xx of that branch
	// (a retransmission, a downstream fork's) goes upstream statelessly
	// through that edge and flow (RFC 6026 §7.2), not from the branch's edge.
	HdrUpstream = "Siphon-Upstream"
	// HdrMore is set on a role's 2xx to an INVITE (role → edge) when more 2xx
	// may follow on the same exchange: a forking proxy whose other branches may
	// answer too (RFC 3261 §16.7 step 5). The edge then relays every 2xx (each
	// retransmitted until its own ACK, RFC 6026 §7.1's Accepted state) until a
	// HdrEnd message or 64·T1.
	HdrMore = "Siphon-More"
	// HdrProbe marks the edge's liveness check of a role replica with INVITEs in
	// flight, a NATS request: to the subject a send-path branch's responses go
	// to (its asker), or to the replica subject of the replica holding an
	// INVITE the edge relays. Either answers with an empty reply
	// (bus.AnswerProbe); one that does not is taken for gone.
	HdrProbe = "Siphon-Probe"
	// HdrReason, on a cancel request, is the Reason header value (RFC 3326) the
	// CANCEL carries, for example `SIP;cause=200;text="Call completed elsewhere"`.
	HdrReason = "Siphon-Reason"
	// HdrStatus is set by the NATS server itself: "503" on an empty message means
	// no subscriber was listening on the subject (no responders).
	HdrStatus = "Status"
	// HdrServiceError and HdrServiceErrorCode are micro's error headers: an edge
	// refusing a send answers with them (code one of the Refuse* values).
	HdrServiceError     = "Nats-Service-Error"
	HdrServiceErrorCode = "Nats-Service-Error-Code"
)

// StatusNoResponders is HdrStatus's value when nobody listened on the subject.
const StatusNoResponders = "503"

// The send path (role → edge). A role publishes a whole SIP message on
// EdgeSendT or EdgeSendAny, with HdrDest or HdrFlow to say where it goes.
//
//   - A request other than ACK runs a client transaction at the edge, which puts
//     its own Via on top. Every response is published to the request's reply
//     subject without that Via, with HdrEdge and HdrBranch: every provisional,
//     the final, and for an INVITE every 2xx (forks and retransmissions) until
//     RFC 6026's Timer M ends the transaction. A non-INVITE stream ends with its
//     final response; an INVITE stream starts with an empty message carrying
//     HdrEdge and HdrBranch (the branch notice: it can be cancelled from then
//     on) and ends with an empty HdrEnd message.
//   - A CANCEL is never sent this way (refused): only the edge knows the branch.
//   - An ACK or a response is sent statelessly and answered with an empty reply,
//     or with a micro error (HdrServiceErrorCode one of the Refuse* codes).
//   - A request on EdgeCancelT with HdrBranch cancels that INVITE branch; it is
//     answered with an empty reply or RefuseNoBranch.
//
// Err* are HdrError's values on a response the edge synthesized.
const (
	// ErrTimeout: no final response within Timer B or F (408).
	ErrTimeout = "timeout"
	// ErrTimerC: the INVITE rang past --timer-c; the edge CANCELled it (408).
	ErrTimerC = "timer-c"
	// ErrTransport: the request could not be sent (503).
	ErrTransport = "transport"
	// ErrCancelled: the branch was CANCELled and no final response came within
	// 64·T1 (RFC 3261 §9.1); the edge gave it up (487).
	ErrCancelled = "cancelled"
)

// Refuse* are the micro error codes of a send or cancel the edge refused.
const (
	// RefuseBadMessage: the payload is not a SIP message, or its destination is
	// unusable. A role answers a request it cannot parse with it too (edge →
	// role), and the edge answers that request 400 with the error's text.
	RefuseBadMessage = "400"
	// RefuseNoBranch: the cancel names no INVITE branch this edge holds.
	RefuseNoBranch = "481"
	// RefuseTransport: the stateless message could not be written.
	RefuseTransport = "503"
)

// SIPRequest is the subject on which role receives requests of method. Callers on
// a hot path compute it once per (role, method).
func SIPRequest(role, method string) string {
	return fmt.Sprintf(SIPRequestT, role, strings.ToLower(method))
}

// SIPRequestRole matches every request for role.
func SIPRequestRole(role string) string { return fmt.Sprintf(SIPRequestRoleT, role) }

// EdgeSend is the send subject of one edge.
func EdgeSend(edgeID string) string {
	return fmt.Sprintf(EdgeSendT, edgeID)
}

// EdgeCancel is the cancel subject of one edge.
func EdgeCancel(edgeID string) string {
	return fmt.Sprintf(EdgeCancelT, edgeID)
}

// Replica is the subject that reaches one replica of role.
func Replica(role, id string) string {
	return fmt.Sprintf(ReplicaT, role, id)
}

// ScenarioWorker is one scenario worker's subject.
func ScenarioWorker(id string) string { return fmt.Sprintf(ScenarioWorkerT, id) }

// ScenarioBarrier, ScenarioCall and ScenarioDone are run's subjects.
func ScenarioBarrier(run string) string { return fmt.Sprintf(ScenarioBarrierT, run) }

// ScenarioCall is the subject of run's call results.
func ScenarioCall(run string) string { return fmt.Sprintf(ScenarioCallT, run) }

// ScenarioDone is the subject of run's workers' ends.
func ScenarioDone(run string) string { return fmt.Sprintf(ScenarioDoneT, run) }

// Event is the subject of an event named name from source: EventT, joined
// rather than formatted (every REGISTER and call publishes one).
func Event(source, name string) string {
	return eventPrefix + source + string(tokenSep) + name
}

// eventPrefix is EventT up to its first verb.
var eventPrefix = EventT[:strings.Index(EventT, "%")]

// EventSource matches every event of source.
func EventSource(source string) string { return fmt.Sprintf(EventSourceT, source) }

// Flow names a flow for HdrFlow.
func Flow(transport, remote string) string {
	return strings.ToLower(transport) + ":" + remote
}

// SplitFlow undoes Flow. ok is false when s is not a flow name.
func SplitFlow(s string) (transport, remote string, ok bool) {
	transport, remote, ok = strings.Cut(s, ":")
	return transport, remote, ok && transport != "" && remote != ""
}

// tokenSep separates the tokens of a NATS subject.
const tokenSep = '.'
