package store

import (
	"context"
	"errors"
	"time"
)

// Subscription is one subscription a notifier holds (RFC 6665 §4.2): the
// dialog its NOTIFYs go in, the resource and package watched, and its state.
type Subscription struct {
	// ID is SubscriptionID(CallID, LocalTag, Event, EventID): one dialog may
	// hold several subscriptions, told apart by package and Event id (§4.5.2).
	ID        string `json:"id"`
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag"`
	RemoteTag string `json:"remote_tag"`
	// Event is the package (presence, dialog, message-summary, reg); EventID
	// the Event header's id parameter.
	Event   string `json:"event"`
	EventID string `json:"event_id,omitempty"`
	// Resource is the address-of-record watched; Watcher the subscriber (its From).
	Resource string `json:"resource"`
	Watcher  string `json:"watcher"`
	// RemoteTarget is the subscriber's Contact; RouteSet its Record-Route, in order.
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set,omitempty"`
	// RemoteCSeq is the last SUBSCRIBE's CSeq. The NOTIFYs' CSeq is the
	// dialog's, shared by its subscriptions: NextCSeq.
	RemoteCSeq uint32 `json:"remote_cseq"`
	// State is pending, active or terminated (RFC 6665 §4.1.3).
	State string `json:"state"`
	// BodyVersion counts the NOTIFY bodies that carry a version (dialog-info, reginfo).
	BodyVersion int64 `json:"body_version,omitempty"`
	// Edge, Transport, Flow and Local say how to reach the subscriber, as for a dialog.
	Edge      string `json:"edge"`
	Transport string `json:"transport"`
	Flow      string `json:"flow,omitempty"`
	Local     string `json:"local"`
	// Expires is when the subscription ends unless refreshed: Expired hands it
	// out then, for its terminated NOTIFY.
	Expires time.Time `json:"expires"`
	// Version is the store's revision: Update stores only over the one read.
	Version int64 `json:"version"`
}

// SubscriptionID names a subscription within its dialog.
func SubscriptionID(callID, localTag, event, eventID string) string {
	return callID + ";" + localTag + ";" + event + ";" + eventID
}

// Errors of Subscriptions.
var (
	ErrSubscriptionExists   = errors.New("store: subscription exists")
	ErrSubscriptionNotFound = errors.New("store: subscription not found")
	ErrSubscriptionConflict = errors.New("store: subscription changed meanwhile")
)

// SubscriptionGrace is how long a subscription stays readable after it
// expired, so the replica that Expired hands it to can send its NOTIFY.
const SubscriptionGrace = 10 * time.Minute

// Subscriptions holds every notifier replica's subscriptions.
type Subscriptions interface {
	// Create stores s (Version becomes 1) unless its ID exists.
	Create(ctx context.Context, s *Subscription) error
	// Get returns the subscription or ErrSubscriptionNotFound.
	Get(ctx context.Context, id string) (*Subscription, error)
	// Update stores s if the stored Version is s.Version, and increments both.
	Update(ctx context.Context, s *Subscription) error
	// Delete removes the subscription and returns it, or ErrSubscriptionNotFound.
	Delete(ctx context.Context, id string) (*Subscription, error)
	// Watchers are the subscriptions to event for resource, expired or not.
	Watchers(ctx context.Context, event, resource string) ([]*Subscription, error)
	// InDialog are the subscriptions in the dialog (Call-ID, our tag): one
	// dialog may hold several (RFC 6665 §4.5.2).
	InDialog(ctx context.Context, callID, localTag string) ([]*Subscription, error)
	// NextCSeq takes the dialog's next NOTIFY CSeq, from 1, rising across
	// replicas and across the dialog's subscriptions; the count is kept at
	// least until keep (a subscription's expiry and grace).
	NextCSeq(ctx context.Context, callID, localTag string, keep time.Time) (uint32, error)
	// Expired takes up to limit subscriptions whose Expires is not after now.
	// Each is handed to exactly one caller across all replicas, once; an
	// Update with a later Expires (a refresh) makes it due again then.
	Expired(ctx context.Context, now time.Time, limit int) ([]*Subscription, error)
}

// RetrySubscription runs change on the current subscription id and stores the
// result, reading again when another replica changed it in between.
func RetrySubscription(ctx context.Context, ss Subscriptions, id string, change func(s *Subscription) error) (*Subscription, error) {
	return retry(ctx, ss, ErrSubscriptionConflict, id, change)
}
