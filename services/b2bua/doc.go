// Package b2bua is the b2bua role: a signalling-only back-to-back user agent
// (RFC 7092 §3.1) that bridges a caller's dialog (A, where it is the UAS) to
// a dialog of its own with the callee's bindings (B, where it is the UAC).
package b2bua
