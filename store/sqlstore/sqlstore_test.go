package sqlstore_test

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/testutil"
	"github.com/mqim/mqim/schema"
	"github.com/mqim/mqim/store"
	"github.com/mqim/mqim/store/sqlstore"
)

// What the contract suite (store/storetest) cannot see through store.Store:
// migrations and the rows behind the methods, on every backend.

type migration struct {
	Version int64  `db:"version"`
	Name    string `db:"name"`
}

// wantMigrations lists the migration files of the store's dialect, whose
// folder in schema.FS is named like the database/sql driver.
func wantMigrations(t *testing.T, st *sqlstore.Store) []migration {
	t.Helper()
	dialect := st.DB().DriverName()
	files, err := fs.Glob(schema.FS, dialect+"/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no migration files for driver %q in schema.FS", dialect)
	}
	var out []migration
	for _, p := range files {
		name := strings.TrimPrefix(p, dialect+"/")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: name does not start with a number", p)
		}
		out = append(out, migration{v, name})
	}
	return out
}

func wantRecorded(t *testing.T, st *sqlstore.Store, want []migration) {
	t.Helper()
	var got []migration
	if err := st.DB().SelectContext(t.Context(), &got, `SELECT version, name FROM schema_migrations ORDER BY version`); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %+v, want one row per file: %+v", got, want)
	}
}

func TestMigrate(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		t.Run("UpToDateIsNoop", func(t *testing.T) {
			st := testutil.OpenStore(t, backend)
			want := wantMigrations(t, st)
			wantRecorded(t, st, want)
			for i := range 2 {
				n, err := st.Migrate(t.Context())
				if err != nil || n != 0 {
					t.Fatalf("Migrate #%d on a migrated store = (%d, %v), want (0, nil)", i+1, n, err)
				}
			}
			wantRecorded(t, st, want)
		})
		// A database a newer mqim migrated is refused, untouched: an
		// older binary must not write to a schema it does not know.
		t.Run("NewerSchemaRefused", func(t *testing.T) {
			st := testutil.OpenStore(t, backend)
			ctx := t.Context()
			want := wantMigrations(t, st)
			if _, err := st.DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 1)`); err != nil {
				t.Fatal(err)
			}
			n, err := st.Migrate(ctx)
			if !errors.Is(err, sqlstore.ErrSchemaNewer) || n != 0 {
				t.Fatalf("Migrate on a newer schema = (%d, %v), want (0, ErrSchemaNewer)", n, err)
			}
			if !strings.Contains(err.Error(), "9999") {
				t.Errorf("error %q does not name the unknown migration", err)
			}
			var rows int
			if err := st.DB().GetContext(ctx, &rows, `SELECT COUNT(*) FROM schema_migrations`); err != nil || rows != len(want)+1 {
				t.Errorf("schema_migrations rows = %d, %v; want %d (untouched)", rows, err, len(want)+1)
			}
		})
		// Migrations use IF NOT EXISTS so that one interrupted halfway
		// (MySQL DDL is not transactional) completes when run again:
		// replaying all of them over an existing schema must work and keep
		// the data.
		t.Run("RerunAfterLostBookkeeping", func(t *testing.T) {
			st := testutil.OpenStore(t, backend)
			ctx := t.Context()
			want := wantMigrations(t, st)
			if _, err := st.UpsertUser(ctx, &store.User{ID: "alice", Name: "Alice"}); err != nil {
				t.Fatal(err)
			}
			conv := "d:alice:bob"
			if err := st.Commit(ctx, []store.Write{{
				Msg:  &store.Message{ID: "m1", Conv: conv, Seq: 1, From: "alice", To: "bob", Type: "text", Body: store.JSON(`{"text":"hi"}`), TS: 1},
				Kind: store.KindDirect, Reader: "alice", Participants: []string{"alice", "bob"},
			}}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB().ExecContext(ctx, `DELETE FROM schema_migrations`); err != nil {
				t.Fatal(err)
			}
			n, err := st.Migrate(ctx)
			if err != nil || n != len(want) {
				t.Fatalf("Migrate with an empty schema_migrations = (%d, %v), want (%d, nil)", n, err, len(want))
			}
			wantRecorded(t, st, want)
			if n, err := st.Migrate(ctx); err != nil || n != 0 {
				t.Fatalf("Migrate again = (%d, %v), want (0, nil)", n, err)
			}
			if u, err := st.User(ctx, "alice"); err != nil || u.Name != "Alice" {
				t.Errorf("user after re-migration = %+v, %v", u, err)
			}
			if ms, err := st.Messages(ctx, conv, store.MsgQuery{Limit: 10}); err != nil || len(ms) != 1 || ms[0].ID != "m1" {
				t.Errorf("messages after re-migration = %v, %v; want [m1]", ms, err)
			}
		})
	})
}

// A token re-bound to another device, or replaced on its device, leaves no
// row behind: a token is stored once.
func TestDeviceTokenRows(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		st := testutil.OpenStore(t, backend)
		ctx := t.Context()
		rows := func(platform, token string) int {
			t.Helper()
			var n int
			if err := st.DB().GetContext(ctx, &n, `SELECT COUNT(*) FROM devices WHERE platform = ? AND token = ?`, platform, token); err != nil {
				t.Fatal(err)
			}
			return n
		}
		put := func(d store.Device) {
			t.Helper()
			if err := st.PutDevice(ctx, &d); err != nil {
				t.Fatalf("PutDevice(%+v): %v", d, err)
			}
		}
		put(store.Device{UserID: "alice", DeviceID: "phone", Platform: store.PlatformIOS, Token: "tok-a"})
		put(store.Device{UserID: "alice", DeviceID: "phone", Platform: store.PlatformIOS, Token: "tok-b"})
		if n := rows(store.PlatformIOS, "tok-a"); n != 0 {
			t.Errorf("the replaced token is still stored (%d rows)", n)
		}
		put(store.Device{UserID: "alice", DeviceID: "laptop", Platform: store.PlatformAndroid, Token: "tok-1"})
		put(store.Device{UserID: "bob", DeviceID: "phone", Platform: store.PlatformAndroid, Token: "tok-1"})
		put(store.Device{UserID: "bob", DeviceID: "tablet", Platform: store.PlatformAndroid, Token: "tok-1"})
		put(store.Device{UserID: "alice", DeviceID: "phone", Platform: store.PlatformAndroid, Token: "tok-1"})
		if n := rows(store.PlatformAndroid, "tok-1"); n != 1 {
			t.Errorf("token tok-1 is stored %d times, want once", n)
		}
		if n := rows(store.PlatformIOS, "tok-b"); n != 0 {
			t.Errorf("the phone's former token tok-b is still stored (%d rows)", n)
		}
		var total int
		if err := st.DB().GetContext(ctx, &total, `SELECT COUNT(*) FROM devices`); err != nil {
			t.Fatal(err)
		}
		if total != 1 {
			t.Errorf("%d device rows, want 1 (alice's phone)", total)
		}
	})
}

// Migration 0006 indexes the messages stored before it (its Go step,
// backfillSearch): text, file and location names, not recalled ones nor
// other types, page after page, and may run again.
func TestSearchBackfill(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		st := testutil.OpenStore(t, backend)
		ctx := t.Context()
		conv := "d:alice:bob"
		var batch []store.Write
		const n = 4500 // more than a backfill page
		for i := 1; i <= n; i++ {
			m := &store.Message{ID: fmt.Sprintf("m%05d", i), Conv: conv, Seq: int64(i), From: "alice", To: "bob",
				Type: "text", Body: store.JSON(fmt.Sprintf(`{"text":"Nachricht %d 你好世界"}`, i)), TS: int64(i)}
			switch i {
			case 1:
				m.Type, m.Body = "file", store.JSON(`{"url":"u","name":"Ａ.PDF"}`)
			case 2:
				m.Type, m.Body = "location", store.JSON(`{"lat":1,"lng":2,"name":"東京"}`)
			case 3:
				m.Type, m.Body = "custom", store.JSON(`{"text":"你好世界"}`)
			case 4:
				m.Recalled, m.Body = true, store.JSON(`null`)
			}
			w := store.Write{Msg: m, Kind: store.KindDirect, Reader: "alice"}
			if i == 1 {
				w.Participants = []string{"alice", "bob"}
			}
			batch = append(batch, w)
			if len(batch) == 500 || i == n {
				if err := st.Commit(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
		count := func() int {
			var c int
			if err := st.DB().GetContext(ctx, &c, `SELECT COUNT(*) FROM message_search WHERE content <> ''`); err != nil {
				t.Fatal(err)
			}
			return c
		}
		want := n - 2 // not the custom message, not the recalled one
		if c := count(); c != want {
			t.Fatalf("%d search rows after commits, want %d", c, want)
		}
		// As if the messages predated 0006 (or the step was interrupted
		// halfway: some rows there already).
		for _, q := range []string{`DELETE FROM message_search WHERE seq > 1000 AND content <> ''`, `DELETE FROM schema_migrations WHERE version = 6`} {
			if _, err := st.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if a, err := st.Migrate(ctx); err != nil || a != 1 {
			t.Fatalf("Migrate = (%d, %v), want (1, nil)", a, err)
		}
		if c := count(); c != want {
			t.Errorf("%d search rows after the backfill, want %d", c, want)
		}
		for q, wantN := range map[string]int{"a.pdf": 1, "東京": 1, "你好世界": n - 4, "nachricht 4499": 1} {
			ms, err := st.Search(ctx, "bob", store.SearchQuery{Text: store.FoldText(q), Limit: n})
			if err != nil || len(ms) != wantN {
				t.Errorf("search %q after the backfill: %d results, %v; want %d", q, len(ms), err, wantN)
			}
		}
	})
}

// Migration 0009 gives every message stored before it (not only the
// searchable ones) its message_search row, whose key then orders history
// and keeps (conv_id, seq) unique in place of messages_conv_seq; it may run
// again.
func TestConversationOrderMigration(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		st := testutil.OpenStore(t, backend)
		ctx := t.Context()
		conv := "d:alice:bob"
		types := []string{"text", "image", "custom", "text", "file"}
		var batch []store.Write
		for i := 1; i <= 20; i++ {
			m := &store.Message{ID: fmt.Sprintf("m%02d", i), Conv: conv, Seq: int64(i), From: "alice", To: "bob",
				Type: types[i%len(types)], Body: store.JSON(`{"text":"hallo","url":"u","name":"n"}`), TS: int64(i)}
			w := store.Write{Msg: m, Kind: store.KindDirect, Reader: "alice"}
			if i == 1 {
				w.Participants = []string{"alice", "bob"}
			}
			batch = append(batch, w)
		}
		if err := st.Commit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// As the table was before 0009: rows for searchable messages only,
		// and the index on messages.
		restore := []string{`DELETE FROM message_search WHERE content = ''`, `DELETE FROM schema_migrations WHERE version = 9`,
			`CREATE UNIQUE INDEX messages_conv_seq ON messages (conv_id, seq)`}
		for _, q := range restore {
			if _, err := st.DB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 { // and once more, as after an interruption
			if a, err := st.Migrate(ctx); err != nil || a != 1 {
				t.Fatalf("Migrate = (%d, %v), want (1, nil)", a, err)
			}
			ms, err := st.Messages(ctx, conv, store.MsgQuery{Limit: 100})
			if err != nil || len(ms) != 20 {
				t.Fatalf("history after 0009: %d messages, %v; want 20", len(ms), err)
			}
			for i, m := range ms {
				if m.Seq != int64(i+1) {
					t.Fatalf("history[%d] has seq %d", i, m.Seq)
				}
			}
			if _, err := st.DB().ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = 9`); err != nil {
				t.Fatal(err)
			}
		}
		// The seq of a stored message, even one that is not searchable, is
		// taken.
		m := &store.Message{ID: "dup", Conv: conv, Seq: 2, From: "bob", To: "alice", Type: "image", Body: store.JSON(`{"url":"u"}`), TS: 99}
		if err := st.Commit(ctx, []store.Write{{Msg: m, Kind: store.KindDirect}}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Commit of a taken seq = %v, want ErrConflict", err)
		}
	})
}
