package store

import (
	"context"
	"errors"
	"time"
)

// Dialog states (RFC 3261 §12): early after a provisional response with a tag,
// confirmed once a 2xx is sent.
const (
	DialogEarly     = "early"
	DialogConfirmed = "confirmed"
)

// Dialog is one dialog a UAS holds (RFC 3261 §12.1.1) and the call state around
// it, so any replica of the role can serve any request inside it.
type Dialog struct {
	// ID is DialogID(CallID, LocalTag): the local tag alone is unique to this
	// UAS, and every in-dialog request carries it as its To tag.
	ID        string `json:"id"`
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag"`
	RemoteTag string `json:"remote_tag"`
	// LocalURI and RemoteURI are the To and From of the INVITE, without tags.
	LocalURI  string `json:"local_uri"`
	RemoteURI string `json:"remote_uri"`
	// RemoteTarget is the peer's Contact URI; RouteSet the Record-Route values in
	// the order they came (a UAS sends to them in that order).
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq"`
	RemoteCSeq   uint32   `json:"remote_cseq"`
	State        string   `json:"state"`
	// InviteCSeq is the CSeq of the INVITE transaction in progress (initial or re-).
	InviteCSeq uint32 `json:"invite_cseq"`
	// Edge, Transport and Flow say how to reach the peer: the edge that owns its
	// connection, and the connection. Local is the edge address it reached,
	// which is this UAS's Contact.
	Edge      string `json:"edge"`
	Transport string `json:"transport"`
	Flow      string `json:"flow,omitempty"`
	Local     string `json:"local"`
	// Replica is the uas replica that holds the INVITE while it is unanswered:
	// CANCEL and PRACK are passed to it.
	Replica string `json:"replica,omitempty"`

	// Media: the last session description each side sent, and the o= line's
	// session id and version of this side's (the version rises on every change).
	LocalSDP   string `json:"local_sdp,omitempty"`
	RemoteSDP  string `json:"remote_sdp,omitempty"`
	SDPSession uint64 `json:"sdp_session,omitempty"`
	SDPVersion uint64 `json:"sdp_version,omitempty"`
	// OfferPending says this side sent an offer whose answer has not come (late
	// offer: the answer comes in the ACK).
	OfferPending bool `json:"offer_pending,omitempty"`

	// RSeq is the last reliable provisional response sent (RFC 3262), and
	// RSeqAcked the last one a PRACK acknowledged.
	RSeq      uint32 `json:"rseq,omitempty"`
	RSeqAcked uint32 `json:"rseq_acked,omitempty"`

	// Session timer (RFC 4028): the interval in seconds, who refreshes
	// ("uac"/"uas"), and when the session was last refreshed.
	SessionExpires int       `json:"session_expires,omitempty"`
	Refresher      string    `json:"refresher,omitempty"`
	Refreshed      time.Time `json:"refreshed,omitzero"`
	// PeerUpdate says the peer allows UPDATE, the lighter refresh (RFC 4028 §9).
	PeerUpdate bool `json:"peer_update,omitempty"`

	// Due is when the role must next act on the dialog unprompted (refresh the
	// session, end it, or expire it); Expires when the dialog is forgotten even
	// if nobody acts.
	Due     time.Time `json:"due"`
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`

	// Version is the store's revision of the dialog: Update succeeds only when
	// it matches, so replicas never overwrite each other's changes.
	Version int64 `json:"version"`
}

// DialogID is the store key of the dialog a UAS identifies by its own tag.
func DialogID(callID, localTag string) string { return callID + ";" + localTag }

// Errors of Dialogs.
var (
	ErrDialogExists   = errors.New("dialog exists")
	ErrDialogNotFound = errors.New("dialog not found")
	ErrDialogConflict = errors.New("dialog changed since it was read")
)

// Dialogs holds UAS dialogs. Every change is compare-and-set on Version, so two
// replicas serving the same dialog at once cannot lose a change: the loser gets
// ErrDialogConflict and reads again.
type Dialogs interface {
	// Create stores d (Version becomes 1) unless its ID exists.
	Create(ctx context.Context, d *Dialog) error
	// Get returns the dialog or ErrDialogNotFound; an expired one is not found.
	Get(ctx context.Context, id string) (*Dialog, error)
	// Update stores d if the stored Version is d.Version, and increments both.
	Update(ctx context.Context, d *Dialog) error
	// Delete removes the dialog and returns it, or ErrDialogNotFound.
	Delete(ctx context.Context, id string) (*Dialog, error)
	// Due takes up to limit dialogs whose Due time is not after now. Each due
	// dialog is handed to exactly one caller across all replicas; the caller
	// sets a new Due with Update (or deletes it), or it is not due again.
	Due(ctx context.Context, now time.Time, limit int) ([]*Dialog, error)
}

// Retry runs change on the current dialog id and stores the result, reading
// again when another replica changed it in between. change returns an error to
// give up without storing.
func Retry(ctx context.Context, ds Dialogs, id string, change func(d *Dialog) error) (*Dialog, error) {
	return retry(ctx, ds, ErrDialogConflict, id, change)
}

// casStore is a store whose Update is a compare-and-set that fails with conflict.
type casStore[T any] interface {
	Get(ctx context.Context, id string) (*T, error)
	Update(ctx context.Context, v *T) error
}

func retry[T any](ctx context.Context, s casStore[T], conflict error, id string, change func(*T) error) (*T, error) {
	for attempt := 0; ; attempt++ {
		v, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(v); err != nil {
			return v, err
		}
		err = s.Update(ctx, v)
		if !errors.Is(err, conflict) || attempt == 20 {
			return v, err
		}
	}
}
