// Package mysql opens an mqim store on MySQL 8 or MariaDB 10.6+ through
// go-sql-driver/mysql.
package mysql

import (
	"context"
	"errors"
	"fmt"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/mqim/mqim/store/sqlstore"
)

// Dialect is MySQL's flavour of SQL.
var Dialect = sqlstore.Dialect{
	Name:         "mysql",
	InsertIgnore: "INSERT IGNORE",
	Greatest:     "GREATEST",
	UpsertUser: `ON DUPLICATE KEY UPDATE name = VALUES(name), avatar = VALUES(avatar), ext = VALUES(ext),
		password_hash = VALUES(password_hash), disabled = VALUES(disabled), tokens_after = VALUES(tokens_after),
		updated_at = VALUES(updated_at)`,
	UpsertDevice: `ON DUPLICATE KEY UPDATE platform = VALUES(platform), token = VALUES(token),
		topic = VALUES(topic), updated_at = VALUES(updated_at)`,
	// MySQL evaluates assignments left to right with the new values, so
	// last_seq, which the others compare against, is assigned last.
	UpsertConvs: `ON DUPLICATE KEY UPDATE
		last_msg_id = IF(VALUES(last_seq) > last_seq AND VALUES(last_msg_id) <> '', VALUES(last_msg_id), last_msg_id),
		updated_at = IF(VALUES(last_seq) > last_seq, VALUES(updated_at), updated_at),
		last_seq = GREATEST(last_seq, VALUES(last_seq))`,
	UpsertReads: `ON DUPLICATE KEY UPDATE
		read_seq = IF(active = 1, GREATEST(read_seq, VALUES(read_seq)), read_seq)`,
	UpsertSession: `ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), expiry_s = VALUES(expiry_s),
		disconnected_at = VALUES(disconnected_at), updated_at = VALUES(updated_at), node = VALUES(node),
		connected_at = VALUES(connected_at)`,
	UpsertPositions: `ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))`,
	IsAlreadyApplied: func(err error) bool {
		var e *driver.MySQLError
		// ER_DUP_FIELDNAME, ER_DUP_KEYNAME (an index made already),
		// ER_CANT_DROP_FIELD_OR_KEY (an index dropped already)
		return errors.As(err, &e) && (e.Number == 1060 || e.Number == 1061 || e.Number == 1091)
	},
	IsConflict: func(err error) bool {
		var e *driver.MySQLError
		return errors.As(err, &e) && e.Number == 1062
	},
	MaxParams: 8000,
}

// Open connects with dsn (a go-sql-driver DSN naming the database) and
// checks that the server answers. The caller applies migrations with
// Migrate.
func Open(ctx context.Context, dsn string, maxConns int) (*sqlstore.Store, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: dsn: %w", err)
	}
	// Client-side interpolation saves a prepare round trip per statement.
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["charset"] = "utf8mb4"
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	st, err := sqlstore.Open(ctx, "mysql", cfg.FormatDSN(), maxConns, Dialect)
	if err != nil {
		return nil, err
	}
	st.DB().SetConnMaxLifetime(30 * time.Minute)
	return st, nil
}
