package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/schema"
)

// ErrSchemaNewer is returned by Migrate when the database records a
// migration this binary does not have: a newer mqim upgraded it, and an
// older one must not write to it (after migration 0009, for example, an
// older node's messages would be missing from history and nothing would
// keep their seqs unique).
var ErrSchemaNewer = errors.New("the database schema is newer than this mqim")

// Migrate applies the dialect's migrations that the database has not seen
// yet, in order, and records each in schema_migrations. It is safe to run
// again: an up-to-date database is left as it is and 0 is returned. A
// database that has a migration this binary does not know is left
// untouched and refused with ErrSchemaNewer.
func Migrate(ctx context.Context, db *sqlx.DB, d Dialect) (applied int, err error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT NOT NULL PRIMARY KEY,
		name VARCHAR(255) NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	var done []int64
	if err := db.SelectContext(ctx, &done, `SELECT version FROM schema_migrations`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	seen := map[int64]bool{}
	for _, v := range done {
		seen[v] = true
	}
	files, err := fs.Glob(schema.FS, d.Name+"/*.sql")
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(files)
	versions := make([]int64, len(files))
	known := map[int64]bool{}
	for i, f := range files {
		num, _, _ := strings.Cut(strings.TrimPrefix(f, d.Name+"/"), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migrate: %s: file name must start with a number", f)
		}
		versions[i], known[v] = v, true
	}
	for _, v := range done {
		if !known[v] {
			return 0, fmt.Errorf("migrate: the database has migration %d: %w; run that version (or newer)", v, ErrSchemaNewer)
		}
	}
	for i, f := range files {
		name, v := strings.TrimPrefix(f, d.Name+"/"), versions[i]
		if seen[v] {
			continue
		}
		body, err := fs.ReadFile(schema.FS, f)
		if err != nil {
			return applied, fmt.Errorf("migrate: %w", err)
		}
		// Statements are applied one by one so no driver needs multi-statement
		// support; they use IF NOT EXISTS (or add columns, whose duplicate
		// is ignored), so a migration interrupted halfway (MySQL DDL is not
		// transactional) completes when run again.
		for _, stmt := range splitStatements(string(body)) {
			if _, err := db.ExecContext(ctx, stmt); err != nil && (d.IsAlreadyApplied == nil || !d.IsAlreadyApplied(err)) {
				return applied, fmt.Errorf("migrate: %s: %w", name, err)
			}
		}
		// What SQL cannot do (text folded in Go) runs right after its
		// file, and is re-runnable like the statements.
		if step := goSteps[v]; step != nil {
			if err := step(ctx, db, d); err != nil {
				return applied, fmt.Errorf("migrate: %s: %w", name, err)
			}
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			v, name, time.Now().UnixMilli()); err != nil {
			return applied, fmt.Errorf("migrate: record %s: %w", name, err)
		}
		applied++
	}
	return applied, nil
}

// splitStatements cuts a migration at lines ending with ";" and drops
// comment-only lines.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}
