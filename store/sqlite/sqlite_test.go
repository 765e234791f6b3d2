package sqlite_test

import (
	"testing"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/storetest"
)

// TestStore runs the store contract against SQLite.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testutil.OpenStore(t, "sqlite") })
}
