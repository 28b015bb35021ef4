//go:build race

package main

// Under `go test -race` the siphond the protocol tests start is race-built too,
// and a race it reports fails the test (harness_test.go).
func init() { buildFlags = append(buildFlags, "-race") }
