// Package testutil holds helpers shared by mqim's tests: fresh real
// databases (SQLite files, MySQL/MariaDB databases), polling, and free ports.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store/mysql"
	"github.com/mqim/mqim/store/sqlite"
	"github.com/mqim/mqim/store/sqlstore"
)

// MySQLEnv names the variable holding a DSN of a MySQL/MariaDB server where
// tests may create and drop databases (no database name in it).
const MySQLEnv = "MQIM_TEST_MYSQL_DSN"

// Backends lists the store backends tests should cover: always "sqlite", and
// "mysql" when MQIM_TEST_MYSQL_DSN is set.
func Backends() []string {
	if os.Getenv(MySQLEnv) != "" {
		return []string{"sqlite", "mysql"}
	}
	return []string{"sqlite"}
}

// EachBackend runs f as a subtest per backend.
func EachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range Backends() {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// EachServer runs f as a subtest per backend, each with a fresh server.
func EachServer(t *testing.T, f func(t *testing.T, srv *Server)) {
	EachBackend(t, func(t *testing.T, backend string) { f(t, StartServer(t, backend)) })
}

// FreshDSN returns the driver name and DSN of a new, empty database of the
// given backend, removed when the test ends. With "sqlite" the DSN is a file
// path in the test's temp dir.
func FreshDSN(t testing.TB, backend string) (string, string) {
	t.Helper()
	switch backend {
	case "sqlite":
		return "sqlite", filepath.Join(t.TempDir(), "mqim.db")
	case "mysql":
		base := os.Getenv(MySQLEnv)
		if base == "" {
			t.Skip(MySQLEnv + " not set")
		}
		cfg, err := driver.ParseDSN(base)
		if err != nil {
			t.Fatalf("%s: %v", MySQLEnv, err)
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		name := "mqim_test_" + hex.EncodeToString(b)
		admin, err := sqlx.Open("mysql", base)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
			admin.Close()
			t.Fatalf("create database: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
			admin.Close()
		})
		cfg.DBName = name
		return "mysql", cfg.FormatDSN()
	}
	t.Fatalf("unknown backend %q", backend)
	return "", ""
}

// OpenStore opens a fresh, migrated store of the given backend, closed when
// the test ends.
func OpenStore(t testing.TB, backend string) *sqlstore.Store {
	t.Helper()
	drv, dsn := FreshDSN(t, backend)
	ctx := context.Background()
	var st *sqlstore.Store
	var err error
	if drv == "sqlite" {
		st, err = sqlite.Open(ctx, dsn, 8)
	} else {
		st, err = mysql.Open(ctx, dsn, 16)
	}
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", backend, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Eventually polls f every 10ms until it returns nil or the deadline passes,
// then fails the test with f's last error.
func Eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %v", within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
