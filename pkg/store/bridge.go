package store

import (
	"context"
	"errors"
	"time"
)

// Bridge states.
const (
	// BridgeEarly: the B leg's INVITE is out, no 2xx yet.
	BridgeEarly = "early"
	// BridgeConfirmed: a 2xx bridged the two legs.
	BridgeConfirmed = "confirmed"
)

// Leg is one of a bridged call's two dialogs (RFC 3261 §12), from the B2BUA's
// side: A, where it is the UAS, and B, where it is the UAC.
type Leg struct {
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag"`
	RemoteTag string `json:"remote_tag,omitempty"`
	// LocalURI and RemoteURI are the B2BUA's and the peer's addresses (From
	// and To), without tags.
	LocalURI  string `json:"local_uri"`
	RemoteURI string `json:"remote_uri"`
	// RemoteTarget is the peer's Contact; RouteSet the route set, in the
	// order requests take it.
	RemoteTarget string   `json:"remote_target,omitempty"`
	RouteSet     []string `json:"route_set,omitempty"`
	// LocalCSeq is the last request this side sent in the dialog; RemoteCSeq
	// the last the peer sent.
	LocalCSeq  uint32 `json:"local_cseq"`
	RemoteCSeq uint32 `json:"remote_cseq"`
	// Edge, Transport, Flow and Local say how to reach the peer, as for a
	// dialog: the edge that owns its connection, the connection, the edge
	// address the peer reaches (the B2BUA's Contact on this leg).
	Edge      string `json:"edge,omitempty"`
	Transport string `json:"transport,omitempty"`
	Flow      string `json:"flow,omitempty"`
	Local     string `json:"local,omitempty"`
	// LocalSDP is the session description the B2BUA last gave this leg's
	// peer (the other peer's): a session refresh offers it again, unchanged.
	LocalSDP string `json:"local_sdp,omitempty"`
}

// Bridge is one call a B2BUA holds: both legs in one record, so one
// compare-and-set covers both and any replica serves either side.
type Bridge struct {
	// ID is the B2BUA's tag on both legs: every request of either dialog
	// carries it as its To tag.
	ID    string `json:"id"`
	A     Leg    `json:"a"`
	B     Leg    `json:"b"`
	State string `json:"state"`
	// InviteCSeq is the CSeq of B's initial INVITE; AckBody, when the caller
	// made a late offer, waits for the caller's ACK (its SDP answer goes into
	// B's ACK), and Acked says B's 2xx was ACKed.
	InviteCSeq uint32 `json:"invite_cseq"`
	LateOffer  bool   `json:"late_offer,omitempty"`
	Acked      bool   `json:"acked,omitempty"`
	AckBody    string `json:"ack_body,omitempty"`
	AckType    string `json:"ack_type,omitempty"`
	// Updating names the leg ("a" or "b") whose re-INVITE or UPDATE is being
	// relayed: one at a time, the other side's gets 491 meanwhile (glare).
	Updating string `json:"updating,omitempty"`
	// Transferring names the leg ("a" or "b") whose REFER is being carried
	// out: its BYE meanwhile ends only its own leg (RFC 5589 §6).
	Transferring string `json:"transferring,omitempty"`
	// Replica is the b2bua replica holding the B leg's INVITE while unanswered.
	Replica string `json:"replica,omitempty"`
	// Created and Answered time the call; Due is when a replica must act on
	// it unprompted: the earlier of RefreshAt (the B2BUA refreshes the
	// session on both legs, RFC 4028) and EndAt (--max-call-duration).
	// Expires is when it is forgotten.
	Created   time.Time `json:"created"`
	Answered  time.Time `json:"answered,omitzero"`
	RefreshAt time.Time `json:"refresh_at,omitzero"`
	EndAt     time.Time `json:"end_at,omitzero"`
	Due       time.Time `json:"due,omitzero"`
	Expires   time.Time `json:"expires"`
	Version   int64     `json:"version"`
}

// Errors of Bridges.
var (
	ErrBridgeExists   = errors.New("store: bridge exists")
	ErrBridgeNotFound = errors.New("store: bridge not found")
	ErrBridgeConflict = errors.New("store: bridge changed meanwhile")
)

// Bridges holds a B2BUA's calls.
type Bridges interface {
	// Create stores b (Version becomes 1) unless its ID exists.
	Create(ctx context.Context, b *Bridge) error
	// Get returns the bridge or ErrBridgeNotFound.
	Get(ctx context.Context, id string) (*Bridge, error)
	// Update stores b if the stored Version is b.Version, and increments both.
	Update(ctx context.Context, b *Bridge) error
	// Delete removes the bridge and returns it, or ErrBridgeNotFound.
	Delete(ctx context.Context, id string) (*Bridge, error)
	// Due takes up to limit bridges whose Due is not after now, each handed
	// to exactly one caller across all replicas, once.
	Due(ctx context.Context, now time.Time, limit int) ([]*Bridge, error)
}

// RetryBridge runs change on the current bridge id and stores the result,
// reading again when another replica changed it in between.
func RetryBridge(ctx context.Context, bs Bridges, id string, change func(b *Bridge) error) (*Bridge, error) {
	return retry(ctx, bs, ErrBridgeConflict, id, change)
}
