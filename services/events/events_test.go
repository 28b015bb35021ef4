package events

import (
	"slices"
	"sort"
	"testing"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// TestPackagesMatchTheContract: what OPTIONS answers announce (wire) is what
// this role serves.
func TestPackagesMatchTheContract(t *testing.T) {
	var served []string
	for name := range packages {
		served = append(served, name)
	}
	sort.Strings(served)
	if !slices.Equal(served, wire.EventPackages) {
		t.Fatalf("packages served %v, announced %v", served, wire.EventPackages)
	}
}
