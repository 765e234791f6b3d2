package storetest

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/mqim/mqim/schema"
	"github.com/mqim/mqim/store"
)

var migrateTests = []test{
	{"UpToDateIsNoop", testMigrateUpToDate},
	{"RerunAfterLostBookkeeping", testMigrateRerun},
	{"Ping", testPing},
}

type migration struct {
	Version int64  `db:"version"`
	Name    string `db:"name"`
}

// wantMigrations lists the migration files of the store's dialect, whose
// folder in schema.FS is named like the database/sql driver.
func wantMigrations(f *fixture) []migration {
	f.t.Helper()
	dialect := f.st.DB().DriverName()
	files, err := fs.Glob(schema.FS, dialect+"/*.sql")
	if err != nil {
		f.t.Fatal(err)
	}
	if len(files) == 0 {
		f.t.Fatalf("no migration files for driver %q in schema.FS", dialect)
	}
	var out []migration
	for _, p := range files {
		name := strings.TrimPrefix(p, dialect+"/")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			f.t.Fatalf("migration %s: name does not start with a number", p)
		}
		out = append(out, migration{v, name})
	}
	return out
}

func (f *fixture) recordedMigrations() []migration {
	f.t.Helper()
	var got []migration
	if err := f.st.DB().SelectContext(f.ctx, &got, `SELECT version, name FROM schema_migrations ORDER BY version`); err != nil {
		f.t.Fatalf("read schema_migrations: %v", err)
	}
	return got
}

func (f *fixture) wantRecorded(want []migration) {
	f.t.Helper()
	got := f.recordedMigrations()
	if len(got) != len(want) {
		f.t.Fatalf("schema_migrations = %v, want one row per file: %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			f.t.Errorf("schema_migrations[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testMigrateUpToDate(t *testing.T, f *fixture) {
	want := wantMigrations(f)
	f.wantRecorded(want)
	for i := range 2 {
		n, err := f.st.Migrate(f.ctx)
		if err != nil || n != 0 {
			t.Fatalf("Migrate #%d on a migrated store = (%d, %v), want (0, nil)", i+1, n, err)
		}
	}
	f.wantRecorded(want)
}

// Migrations use IF NOT EXISTS so that one interrupted halfway (MySQL DDL is
// not transactional) completes when run again: replaying all of them over
// an existing schema must work and keep the data.
func testMigrateRerun(t *testing.T, f *fixture) {
	want := wantMigrations(f)
	f.upsertUser(&store.User{ID: "alice", Name: "Alice"})
	f.commit(firstDM(dm("m1", 1, "alice", "bob", base)))
	if _, err := f.st.DB().ExecContext(f.ctx, `DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	n, err := f.st.Migrate(f.ctx)
	if err != nil || n != len(want) {
		t.Fatalf("Migrate with an empty schema_migrations = (%d, %v), want (%d, nil)", n, err, len(want))
	}
	f.wantRecorded(want)
	if n, err := f.st.Migrate(f.ctx); err != nil || n != 0 {
		t.Fatalf("Migrate again = (%d, %v), want (0, nil)", n, err)
	}
	if u, err := f.st.User(f.ctx, "alice"); err != nil || u.Name != "Alice" {
		t.Errorf("user after re-migration = %+v, %v", u, err)
	}
	if ms := f.history(directConv("alice", "bob")); len(ms) != 1 {
		t.Errorf("messages after re-migration = %v, want [m1]", ids(ms))
	}
}

func testPing(t *testing.T, f *fixture) {
	if err := f.st.Ping(f.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
