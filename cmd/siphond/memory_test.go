package main

import (
	"runtime"
	"testing"
)

func TestIdleAndHolding(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                    string
		since, total, sys, rels uint64
		want                    bool
	}{
		{"busy: 200 MiB allocated since", 0, 200 * mib, 900 * mib, 0, false},
		{"quiet and holding 900 MiB", 500 * mib, 505 * mib, 900 * mib, 0, true},
		{"quiet, already given back", 500 * mib, 505 * mib, 900 * mib, 850 * mib, false},
		{"quiet and small", 500 * mib, 501 * mib, 40 * mib, 0, false},
	}
	for _, tt := range tests {
		m := &runtime.MemStats{TotalAlloc: tt.total, HeapSys: tt.sys, HeapReleased: tt.rels}
		if got := idleAndHolding(tt.since, m); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
