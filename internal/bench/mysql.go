package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// freshDatabase makes the DSN of the server's database for one run: a DSN
// that names a database is used as is (the server migrates it); one that
// names none (`user:pass@tcp(host:port)/`) gets a new database
// mqim_bench_<random>, and drop removes it after the run.
func freshDatabase(ctx context.Context, dsn string) (fresh string, drop func(), err error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("--mysql-dsn: %w", err)
	}
	if cfg.DBName != "" {
		return dsn, func() {}, nil
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", nil, err
	}
	name := "mqim_bench_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	cfg.DBName = name
	return cfg.FormatDSN(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		admin.Close()
	}, nil
}
