package mysql_test

import (
	"os"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/storetest"
)

// TestStore runs the store contract against MySQL/MariaDB; it needs a
// server (MQIM_TEST_MYSQL_DSN, see scripts/test-mysql.sh).
func TestStore(t *testing.T) {
	if os.Getenv(testutil.MySQLEnv) == "" {
		t.Skip(testutil.MySQLEnv + " not set; run under scripts/test-mysql.sh")
	}
	storetest.Run(t, func(t *testing.T) store.Store { return testutil.OpenStore(t, "mysql") })
}
