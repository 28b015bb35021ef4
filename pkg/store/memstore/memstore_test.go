package memstore_test

import (
	"testing"

	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/store/memstore"
	"github.com/siphon-lab/siphon/pkg/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return memstore.New(nil) })
}
