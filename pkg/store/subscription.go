package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Subscription is one subscription a notifier holds (RFC 6665 §4.2): the
// dialog its NOTIFYs go in, the resource and package watched, and its state.
// Its JSON names are short: a lab holds many subscriptions, and the names
// were a third of each one's stored bytes.
type Subscription struct {
	// ID is SubscriptionID(CallID, LocalTag, Event, EventID): one dialog may
	// hold several subscriptions, told apart by package and Event id (§4.5.2).
	ID string `json:"id"`
	// CallID and LocalTag are read back from ID, not stored twice.
	CallID    string `json:"-"`
	LocalTag  string `json:"-"`
	RemoteTag string `json:"rt"`
	// Event is the package (presence, dialog, message-summary, reg); EventID
	// the Event header's id parameter.
	Event   string `json:"e"`
	EventID string `json:"ei,omitempty"`
	// Resource is the address-of-record watched; Watcher the subscriber (its From).
	Resource string `json:"r"`
	Watcher  string `json:"w"`
	// RemoteTarget is the subscriber's Contact; RouteSet its Record-Route, in order.
	RemoteTarget string   `json:"tg"`
	RouteSet     []string `json:"rs,omitempty"`
	// RemoteCSeq is the last SUBSCRIBE's CSeq. The NOTIFYs' CSeq is the
	// dialog's, shared by its subscriptions: NextCSeq.
	RemoteCSeq uint32 `json:"cs"`
	// State is pending, active or terminated (RFC 6665 §4.1.3).
	State string `json:"s"`
	// BodyVersion counts the NOTIFY bodies that carry a version (dialog-info, reginfo).
	BodyVersion int64 `json:"bv,omitempty"`
	// Edge, Transport, Flow and Local say how to reach the subscriber, as for a dialog.
	Edge      string `json:"ed"`
	Transport string `json:"tr"`
	Flow      string `json:"fl,omitempty"`
	Local     string `json:"l"`
	// Expires is when the subscription ends unless refreshed: Expired hands it
	// out then, for its terminated NOTIFY.
	Expires time.Time `json:"x"`
	// Version is the store's revision: Update stores only over the one read.
	Version int64 `json:"v"`
}

// SubscriptionID names a subscription within its dialog.
func SubscriptionID(callID, localTag, event, eventID string) string {
	return callID + ";" + localTag + ";" + event + ";" + eventID
}

// UnmarshalJSON reads a stored subscription and its Call-ID and tag from its
// ID: a tag, a package and an Event id are tokens, which hold no ";".
func (s *Subscription) UnmarshalJSON(data []byte) error {
	type plain Subscription
	if err := json.Unmarshal(data, (*plain)(s)); err != nil {
		return err
	}
	parts := strings.Split(s.ID, ";")
	if len(parts) < 4 {
		return fmt.Errorf("store: subscription id %q: want call-id;tag;event;id", s.ID)
	}
	n := len(parts)
	s.CallID, s.LocalTag = strings.Join(parts[:n-3], ";"), parts[n-3]
	return nil
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
