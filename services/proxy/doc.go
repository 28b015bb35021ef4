// Package proxy is the proxy role: a stateful forking proxy (RFC 3261 §16)
// over the registrar's location store. Its response context (reduce.go) is a
// pure state machine; the role around it is issue 10's work in progress.
package proxy
