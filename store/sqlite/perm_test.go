//go:build unix

package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mqim/mqim/store/sqlite"
)

// The database and its -wal and -shm files are readable by their owner
// only, whatever the umask, and an existing database (and the -wal and -shm
// files a running process left) opened again is made so.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0) // without the fix, SQLite's 0644 would show as is
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "mqim.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil { // writes, so -wal and -shm exist
		t.Fatal(err)
	}
	modes := func(want os.FileMode) {
		t.Helper()
		for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			w := want
			if p == dir {
				w = 0o700
			}
			if got := fi.Mode().Perm(); got != w {
				t.Errorf("%s: mode %o, want %o", filepath.Base(p), got, w)
			}
		}
	}
	modes(0o600)

	// As an earlier version left them, while st still has them open.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	again, err := sqlite.Open(ctx, path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	modes(0o600)
}
