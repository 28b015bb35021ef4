package wire

import (
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// Events: each source role publishes its state changes on Event(source, name)
// as JSON, with no reply. The names are grouped by source, each with its payload.

// The registrar's events (source RoleRegistrar), payload BindingEvent.
const (
	// EventBindingAdded: a REGISTER added a contact.
	EventBindingAdded = "binding.added"
	// EventBindingRefreshed: a REGISTER renewed a contact.
	EventBindingRefreshed = "binding.refreshed"
	// EventBindingRemoved: a REGISTER removed a contact (Expires: 0 or *).
	EventBindingRemoved = "binding.removed"
	// EventBindingExpired: a contact reached its expiry unrenewed.
	EventBindingExpired = "binding.expired"
)

// BindingEvent is the payload of a registrar event.
type BindingEvent struct {
	Event   string        `json:"event"`
	Binding store.Binding `json:"binding"`
	At      time.Time     `json:"at"`
}

// The uas's events (source RoleUAS), payload CallEvent.
const (
	// EventCallStarted: a call was answered (2xx sent) or a call the uas placed was.
	EventCallStarted = "call.started"
	// EventCallEnded: a BYE ended a call.
	EventCallEnded = "call.ended"
	// EventCallCancelled: the caller cancelled a ringing call.
	EventCallCancelled = "call.cancelled"
	// EventCallReplaced: an INVITE with Replaces (RFC 3891) took the call over.
	EventCallReplaced = "call.replaced"
	// EventCallAnswered: the ACK brought the answer to the uas's late offer.
	EventCallAnswered = "call.answered"
	// EventDialogExpired: a dialog was forgotten unprompted (no request for
	// --dialog-expiry, or an early dialog whose replica died).
	EventDialogExpired = "dialog.expired"
	// EventSessionRefreshed: a session timer (RFC 4028) was refreshed.
	EventSessionRefreshed = "session.refreshed"
	// EventSessionExpired: a session timer ran out; the uas sent BYE.
	EventSessionExpired = "session.expired"
	// EventInfoReceived: an INFO arrived (RFC 6086); Body and ContentType carry it.
	EventInfoReceived = "info.received"
	// EventMessageReceived: a MESSAGE arrived (RFC 3428).
	EventMessageReceived = "message.received"
	// EventReferNotify: a NOTIFY for a REFER went to the referrer; Body is the sipfrag.
	EventReferNotify = "refer.notify"
)

// CallEvent is the payload of a uas event.
type CallEvent struct {
	Event     string `json:"event"`
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag,omitempty"`
	RemoteTag string `json:"remote_tag,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// ContentType and Body are the request's (INFO, MESSAGE) or the sipfrag a
	// NOTIFY carried (refer.notify).
	ContentType string    `json:"content_type,omitempty"`
	Body        string    `json:"body,omitempty"`
	InfoPackage string    `json:"info_package,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Replica     string    `json:"replica"`
	At          time.Time `json:"at"`
}

// The b2bua's events (source RoleB2BUA), payload BridgeEvent; a call's end
// is EventCallEnded, as the uas names it.
const (
	// EventCallBridged: a callee's 2xx bridged the two legs of a call.
	EventCallBridged = "call.bridged"
	// EventCallTransferred: a REFER's target answered and the call was
	// bridged to it (Callee is the target's contact).
	EventCallTransferred = "call.transferred"
)

// BridgeEvent is the payload of a b2bua event.
type BridgeEvent struct {
	Event string `json:"event"`
	// ID is the call's: the b2bua's tag on both legs.
	ID           string `json:"id"`
	CallerCallID string `json:"caller_call_id"`
	CalleeCallID string `json:"callee_call_id"`
	From         string `json:"from"`
	To           string `json:"to"`
	// Callee is the contact that answered.
	Callee string `json:"callee,omitempty"`
	// EndedBy is caller, callee or b2bua (--max-call-duration); Reason why.
	EndedBy string `json:"ended_by,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// CallerLegMS is how long the caller's leg lasted, from its INVITE;
	// CalleeLegMS the callee's, from its answer.
	CallerLegMS int64     `json:"caller_leg_ms,omitempty"`
	CalleeLegMS int64     `json:"callee_leg_ms,omitempty"`
	Replica     string    `json:"replica"`
	At          time.Time `json:"at"`
}

// The events role's events (source RoleEvents), payload StateEvent.
const (
	// EventPublished: a PUBLISH set a resource's state (initial or modify, RFC 3903).
	EventPublished = "publication.set"
	// EventPublicationRemoved: a publication was removed (Expires: 0) or,
	// with Reason "expired", lapsed unrefreshed.
	EventPublicationRemoved = "publication.removed"
	// EventNotifyReceived: a NOTIFY came to the lab; Matched says whether it
	// was for a subscription the lab holds (200) or not (481).
	EventNotifyReceived = "notify.received"
	// EventSubscriptionEnded: a subscription ended; Reason is unsubscribed,
	// timeout (it expired) or notify-failed (its NOTIFY was refused or not
	// answered, RFC 6665 §4.2.2).
	EventSubscriptionEnded = "subscription.ended"
)

// StateEvent is the payload of an events-role event.
type StateEvent struct {
	Event string `json:"event"`
	// Package is the event package; Resource the address-of-record.
	Package  string `json:"package"`
	Resource string `json:"resource,omitempty"`
	ETag     string `json:"etag,omitempty"`
	// CallID, From, SubscriptionState and Matched describe a NOTIFY received.
	CallID            string `json:"call_id,omitempty"`
	From              string `json:"from,omitempty"`
	SubscriptionState string `json:"subscription_state,omitempty"`
	Matched           bool   `json:"matched,omitempty"`
	// ContentType and Body are the published state or the NOTIFY's body.
	ContentType string    `json:"content_type,omitempty"`
	Body        string    `json:"body,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Replica     string    `json:"replica"`
	At          time.Time `json:"at"`
}

// EventPackages are the SIP event packages (RFC 6665) the events role
// serves, for its 489s and every OPTIONS answer's Allow-Events (§8.2.2).
var EventPackages = []string{"dialog", "message-summary", "presence", "reg"}

// The proxy's events (source RoleProxy), payload RouteEvent.
const (
	// EventCallRouted: a request out of a dialog was forwarded to the bindings
	// of its target and its final response went upstream.
	EventCallRouted = "call.routed"
)

// RouteEvent is the payload of a proxy event.
type RouteEvent struct {
	Event  string `json:"event"`
	Method string `json:"method"`
	CallID string `json:"call_id"`
	From   string `json:"from"`
	// Target is the Request-URI as received (the address-of-record called).
	Target string `json:"target"`
	// Contact is the binding whose response went upstream (for a 2xx, the
	// one that answered); Tried every one forwarded to, in order.
	Contact string   `json:"contact,omitempty"`
	Tried   []string `json:"tried"`
	// Code is the final response's status code upstream.
	Code    int       `json:"code"`
	Replica string    `json:"replica"`
	At      time.Time `json:"at"`
}
