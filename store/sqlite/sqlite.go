// Package sqlite opens an mqim store on SQLite through the pure-Go
// modernc.org/sqlite driver: no cgo, no server, the default for
// `go run ./cmd/mqim`.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/mqim/mqim/store/sqlstore"
)

// Dialect is SQLite's flavour of SQL.
var Dialect = sqlstore.Dialect{
	Name:         "sqlite",
	InsertIgnore: "INSERT OR IGNORE",
	Greatest:     "MAX",
	UpsertUser: `ON CONFLICT (id) DO UPDATE SET name = excluded.name, avatar = excluded.avatar, ext = excluded.ext,
		password_hash = excluded.password_hash, disabled = excluded.disabled, tokens_after = excluded.tokens_after,
		updated_at = excluded.updated_at`,
	UpsertDevice: `ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform, token = excluded.token,
		topic = excluded.topic, updated_at = excluded.updated_at`,
	UpsertConvs: `ON CONFLICT (id) DO UPDATE SET
		last_msg_id = CASE WHEN excluded.last_seq > conversations.last_seq AND excluded.last_msg_id <> '' THEN excluded.last_msg_id ELSE conversations.last_msg_id END,
		updated_at = CASE WHEN excluded.last_seq > conversations.last_seq THEN excluded.updated_at ELSE conversations.updated_at END,
		last_seq = MAX(conversations.last_seq, excluded.last_seq)`,
	UpsertReads: `ON CONFLICT (user_id, conv_id) DO UPDATE SET
		read_seq = CASE WHEN conversation_members.active = 1 THEN MAX(conversation_members.read_seq, excluded.read_seq) ELSE conversation_members.read_seq END`,
	UpsertSession: `ON CONFLICT (client_id) DO UPDATE SET user_id = excluded.user_id, expiry_s = excluded.expiry_s,
		disconnected_at = excluded.disconnected_at, updated_at = excluded.updated_at, node = excluded.node,
		connected_at = excluded.connected_at`,
	UpsertPositions: `ON CONFLICT (client_id, conv_id) DO UPDATE SET seq = MAX(mqtt_session_positions.seq, excluded.seq)`,
	IsAlreadyApplied: func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "duplicate column name")
	},
	IsConflict: func(err error) bool {
		var e *sqlite3.Error
		if !errors.As(err, &e) {
			return false
		}
		c := e.Code()
		return c == sqlite3lib.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	MaxParams: 900,
	// Batches are cut into statements of these sizes, each prepared once:
	// SQLite parses nothing per batch (BENCHMARKS.md).
	RowChunks: []int{64, 16, 4, 1},
}

// Open opens (creating if needed) the database file at path, in WAL mode with
// synchronous=FULL so that a commit survives a crash of the machine, and
// checks that it answers. The caller applies migrations with Migrate.
//
// The database holds every message, so only its owner may read it: a
// missing folder is created 0700, and the file is created 0600 (or made so
// when it exists) before SQLite opens it; SQLite gives the -wal and -shm
// files it creates the database file's mode, and existing ones are made
// 0600 too.
func Open(ctx context.Context, path string, maxConns int) (*sqlstore.Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	// temp_store=MEMORY keeps statement journals (each multi-row INSERT of a
	// group commit writes one) in memory instead of temporary files: about
	// a sixth more messages per second (BENCHMARKS.md), durability unchanged
	// (the WAL is on disk and synced at every commit).
	// Writers take the lock at BEGIN, so two writers queue on busy_timeout
	// instead of failing when both try to upgrade a read lock.
	q.Set("_txlock", "immediate")
	return sqlstore.Open(ctx, "sqlite", "file:"+path+"?"+q.Encode(), maxConns, Dialect)
}

// ownerOnly creates path (mode 0600) if it does not exist and makes it and
// its existing -wal and -shm files mode 0600. A file of another owner
// (which this process may not chmod) keeps the mode that owner chose. An
// in-memory database has no file.
func ownerOnly(path string) error {
	if path == ":memory:" || path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
			return err
		}
	}
	return nil
}
