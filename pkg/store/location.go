package store

import (
	"context"
	"errors"
	"sort"
	"time"
)

// Binding is one contact registered for an address-of-record (RFC 3261 §10).
type Binding struct {
	AOR     string `json:"aor"`
	Contact string `json:"contact"` // the Contact URI as registered
	// Q is the contact's preference, 0..1; QSet says the request gave one.
	Q    float64 `json:"q"`
	QSet bool    `json:"q_set,omitempty"`
	// Expires is when the binding ends.
	Expires time.Time `json:"expires"`
	CallID  string    `json:"call_id"`
	CSeq    uint32    `json:"cseq"`
	// Path is the Path header values the REGISTER carried (RFC 3327).
	Path []string `json:"path,omitempty"`
	// Instance and RegID identify an outbound flow (RFC 5626).
	Instance string `json:"instance,omitempty"`
	RegID    int    `json:"reg_id,omitempty"`
	// Edge, Transport, Source and Flow say how to reach the UA again: the edge
	// that owns its connection, and the connection itself.
	Edge      string    `json:"edge,omitempty"`
	Transport string    `json:"transport,omitempty"`
	Source    string    `json:"source,omitempty"`
	Flow      string    `json:"flow,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Change is one contact of a REGISTER: a binding to add or refresh, or, with
// Remove, a contact to take away.
type Change struct {
	Binding Binding
	Remove  bool
}

// Registration is a REGISTER's changes to one address-of-record.
type Registration struct {
	AOR    string
	CallID string
	CSeq   uint32
	// Wildcard removes every binding (Contact: * with Expires: 0).
	Wildcard bool
	Changes  []Change
}

// Outcome is what a Registration did.
type Outcome struct {
	Added, Refreshed, Removed []Binding
	// Expired are bindings found past their time and dropped on the way; they
	// are not the sweep's any more, so the caller announces them.
	Expired []Binding
	// Current is the AOR's bindings afterwards, ordered by q.
	Current []Binding
}

// ErrOutOfOrder means a binding the request touches was last set by the same
// Call-ID with a CSeq not below the request's (RFC 3261 §10.3 step 7): nothing
// was changed.
var ErrOutOfOrder = errors.New("store: out-of-order REGISTER (same Call-ID, CSeq not higher)")

// Location is the location service. Only the registrar writes it; the proxy
// and the B2BUA read it. A binding past its expiry is never returned.
type Location interface {
	// Register applies reg atomically: all of it, or nothing (ErrOutOfOrder).
	Register(ctx context.Context, reg Registration, now time.Time) (Outcome, error)
	// Lookup returns the AOR's live bindings ordered by q, highest first.
	Lookup(ctx context.Context, aor string, now time.Time) ([]Binding, error)
	// Expire removes up to limit bindings whose time has passed and returns them,
	// each to exactly one caller, so every expiry is announced once.
	Expire(ctx context.Context, now time.Time, limit int) ([]Binding, error)
}

// SortByQ orders bindings by q, highest first; equal q by the most recently
// updated first, then by contact for a stable order.
func SortByQ(bs []Binding) {
	sort.SliceStable(bs, func(i, j int) bool {
		qi, qj := bs[i].EffectiveQ(), bs[j].EffectiveQ()
		if qi != qj {
			return qi > qj
		}
		if !bs[i].Updated.Equal(bs[j].Updated) {
			return bs[i].Updated.After(bs[j].Updated)
		}
		return bs[i].Contact < bs[j].Contact
	})
}

// EffectiveQ is the q used for ordering: a contact without q ranks as 1.0.
func (b Binding) EffectiveQ() float64 {
	if !b.QSet {
		return 1
	}
	return b.Q
}
