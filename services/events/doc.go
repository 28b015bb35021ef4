// Package events is the events role: a notifier (RFC 6665) whose
// subscriptions live in the shared store, so any replica serves a refresh or
// an unsubscribe and each expiry is handled by exactly one.
package events
