package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
)

// The group commit writes a batch with multi-row statements whose text
// depends on how many rows they carry. Built afresh for each batch, that
// text is parsed afresh by the database too (on SQLite, 7 % of a loaded
// server's CPU). A dialect with RowChunks instead cuts the rows into chunks
// of those fixed sizes, largest first, so that a few statement texts serve
// every batch; each is prepared once on the pool (database/sql prepares it
// again on each connection the first time a transaction there runs it) and
// reused by every transaction.

// rowStmt is a multi-row statement of the group commit: build returns its
// text for n rows of per values each.
type rowStmt struct {
	name  string
	per   int
	build func(d Dialect, n int) string
}

// rowStmts are the statements the group commit runs in every batch, all
// prepared together (stmts.prepare).
var rowStmts = []*rowStmt{insertMessages, insertSearchRows, upsertConvs, unhideConvs, insertParticipants, upsertReads}

// stmtKey names one prepared statement: the statement and its rows.
type stmtKey struct {
	st   *rowStmt
	rows int
}

// stmts holds a Store's prepared statements: all of rowStmts at every
// size of RowChunks, prepared on the first Commit, before its transaction
// (preparing on the pool from inside one could wait for a connection that
// another transaction, waiting for the write lock, holds).
type stmts struct {
	mu sync.Mutex // serializes prepare
	m  atomic.Pointer[map[stmtKey]*sqlx.Stmt]
}

// prepare prepares the statements if they are not yet.
func (c *stmts) prepare(ctx context.Context, db *sqlx.DB, d Dialect) error {
	if len(d.RowChunks) == 0 || c.m.Load() != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m.Load() != nil {
		return nil
	}
	m := map[stmtKey]*sqlx.Stmt{}
	for _, rs := range rowStmts {
		for _, n := range d.RowChunks {
			if n*rs.per > d.MaxParams {
				continue
			}
			st, err := db.PreparexContext(ctx, rs.build(d, n))
			if err != nil {
				for _, st := range m {
					st.Close()
				}
				return fmt.Errorf("prepare %s: %w", rs.name, err)
			}
			m[stmtKey{rs, n}] = st
		}
	}
	c.m.Store(&m)
	return nil
}

// get returns the prepared statement of key, nil when there is none.
func (c *stmts) get(key stmtKey) *sqlx.Stmt {
	if m := c.m.Load(); m != nil {
		return (*m)[key]
	}
	return nil
}

// close releases every prepared statement.
func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.m.Swap(nil); m != nil {
		for _, st := range *m {
			st.Close()
		}
	}
}

// execRows runs rs over args, per values for each of its rows, in tx (nil:
// on the pool): n rows at a time. With the dialect's RowChunks, n takes
// those sizes only, largest first, and the statements prepared by
// stmts.prepare run; without (or outside a transaction), n is as many rows
// as MaxParams allows and the text is built for each chunk.
func (s *Store) execRows(ctx context.Context, tx *sqlx.Tx, rs *rowStmt, args []any) error {
	if len(args)%rs.per != 0 {
		return fmt.Errorf("%s: %d values for rows of %d", rs.name, len(args), rs.per)
	}
	most := s.d.MaxParams / rs.per
	for len(args) > 0 {
		n := min(len(args)/rs.per, most)
		var err error
		if st := s.stmts.get(stmtKey{rs, chunkSize(s.d.RowChunks, n)}); st != nil && tx != nil {
			n = chunkSize(s.d.RowChunks, n)
			_, err = tx.StmtxContext(ctx, st).ExecContext(ctx, args[:rs.per*n]...)
		} else if tx != nil {
			_, err = tx.ExecContext(ctx, rs.build(s.d, n), args[:rs.per*n]...)
		} else {
			_, err = s.db.ExecContext(ctx, rs.build(s.d, n), args[:rs.per*n]...)
		}
		if err != nil {
			return err
		}
		args = args[rs.per*n:]
	}
	return nil
}

// chunkSize is the largest of sizes not above rows (rows when none is).
func chunkSize(sizes []int, rows int) int {
	for _, n := range sizes {
		if n <= rows {
			return n
		}
	}
	return rows
}
