package store

import (
	"context"
	"errors"
	"time"
)

// Publication is one piece of event state a publisher put here with PUBLISH
// (RFC 3903): an event state compositor keeps it under its entity-tag until
// it expires, is refreshed (a new entity-tag) or removed.
type Publication struct {
	// ETag is the entity-tag the 200 gave (SIP-ETag); a refresh, modify or
	// remove names it in SIP-If-Match. It is the record's id.
	ETag string `json:"etag"`
	// Event is the package (presence, message-summary); Resource the
	// address-of-record the state is of.
	Event    string `json:"event"`
	Resource string `json:"resource"`
	// ContentType and Body are the published state, as it came.
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
	// Published is when this state (not a refresh of it) came: the newest
	// publication of a resource wins.
	Published time.Time `json:"published"`
	// Expires is when the state lapses unless refreshed: Expired hands it out
	// then, so the watchers learn the state without it.
	Expires time.Time `json:"expires"`
	// Version is the store's revision.
	Version int64 `json:"version"`
}

// Errors of Publications.
var (
	ErrPublicationExists   = errors.New("store: publication exists")
	ErrPublicationNotFound = errors.New("store: publication not found")
)

// Publications holds every event state compositor replica's publications.
// A refresh or a modify is a Create under the new entity-tag and a Delete of
// the old one: Delete answers one caller, so of two racing refreshes one wins
// and the other's entity-tag is unknown (412).
type Publications interface {
	// Create stores p unless its ETag exists.
	Create(ctx context.Context, p *Publication) error
	// Get returns the publication or ErrPublicationNotFound.
	Get(ctx context.Context, etag string) (*Publication, error)
	// Delete removes the publication and returns it, or ErrPublicationNotFound.
	Delete(ctx context.Context, etag string) (*Publication, error)
	// Published are the publications of event for resource, expired or not.
	Published(ctx context.Context, event, resource string) ([]*Publication, error)
	// Expired takes up to limit publications whose Expires is not after now,
	// each handed to exactly one caller across all replicas, once.
	Expired(ctx context.Context, now time.Time, limit int) ([]*Publication, error)
}
