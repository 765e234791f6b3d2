package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store"
)

// Store is the sqlx implementation of store.Store. Its errors wrap
// store.ErrNotFound and store.ErrConflict where the contract names them, and
// say their operation.
type Store struct {
	db    *sqlx.DB
	d     Dialect
	stmts stmts // the group commit's prepared statements
}

var _ store.Store = (*Store)(nil)

// New wraps an open database of dialect d (MaxParams 0: 900). It neither
// pings nor migrates.
func New(db *sqlx.DB, d Dialect) *Store {
	if d.MaxParams == 0 {
		d.MaxParams = 900
	}
	return &Store{db: db, d: d}
}

// Open opens a pool of at most maxConns connections, all kept when idle,
// on a database/sql driver, checks that the database answers, and wraps it.
// The caller applies migrations with Migrate.
func Open(ctx context.Context, driverName, dsn string, maxConns int, d Dialect) (*Store, error) {
	db, err := sqlx.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return New(db, d), nil
}

// Migrate applies the dialect's pending migrations and reports how many
// ran (see the package function Migrate).
func (s *Store) Migrate(ctx context.Context) (int, error) { return Migrate(ctx, s.db, s.d) }

// DB exposes the pool, for tests and tools that need raw SQL; the store's
// methods keep working beside it.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping tells whether the database answers (store.Store).
func (s *Store) Ping(ctx context.Context) error { return s.wrap("ping", s.db.PingContext(ctx)) }

// Close releases the connection pool (store.Store); the store is unusable
// afterwards.
func (s *Store) Close() error {
	s.stmts.close()
	return s.wrap("close", s.db.Close())
}

func now() int64 { return time.Now().UnixMilli() }

// wrap adds context and maps driver errors onto the store sentinels.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case s.d.IsConflict(err):
		return fmt.Errorf("%s: %w: %v", op, store.ErrConflict, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func chunks[T any](xs []T, n int) [][]T {
	var out [][]T
	for len(xs) > n {
		out = append(out, xs[:n])
		xs = xs[n:]
	}
	if len(xs) > 0 {
		out = append(out, xs)
	}
	return out
}

// selectIn runs q, whose "IN (?)" takes ids, a chunk of ids at a time (as
// many as a statement may bind next to the args before them), and gathers
// the rows of all chunks.
func selectIn[T any](ctx context.Context, s *Store, op, q string, ids []string, before ...any) ([]T, error) {
	out := []T{}
	for _, chunk := range chunks(ids, s.d.MaxParams-len(before)) {
		query, args, err := sqlx.In(q, append(append([]any(nil), before...), chunk)...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		var rows []T
		if err := s.db.SelectContext(ctx, &rows, query, args...); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// placeholders returns "(?,?),(?,?)" for rows of n columns.
func placeholders(rows, n int) string {
	one := "(" + strings.Repeat("?,", n-1) + "?)"
	return strings.Repeat(one+",", rows-1) + one
}
