// Package sqlstore implements store.Store with hand-written SQL over sqlx for
// every dialect mqim supports. The dialect-specific parts (upsert syntax,
// error codes, migrations folder) come from a Dialect, supplied by the thin
// driver packages store/sqlite and store/mysql.
package sqlstore

// Dialect is what differs between SQL databases.
type Dialect struct {
	// Name is the folder of schema.FS holding this dialect's migrations.
	Name string
	// InsertIgnore starts an insert that skips rows violating a unique key.
	InsertIgnore string
	// Greatest is the two-argument maximum function.
	Greatest string
	// UpsertUser follows a one-row INSERT INTO users of every column: on an
	// existing id it sets every column but id and created_at to the new
	// row's.
	UpsertUser string
	// UpsertDevice follows a one-row INSERT INTO devices of every column: on
	// an existing (user_id, device_id) it sets platform, token, topic and
	// updated_at to the new row's.
	UpsertDevice string
	// UpsertConvs follows a multi-row INSERT INTO conversations (id, kind,
	// last_seq, last_msg_id, updated_at): on an existing id it moves
	// last_seq, last_msg_id and updated_at forward, never back; an empty
	// last_msg_id (a batch of only recall/edit records) keeps the stored one.
	UpsertConvs string
	// UpsertReads follows a multi-row INSERT INTO conversation_members
	// (user_id, conv_id, read_seq, min_seq): on an existing row it raises
	// read_seq (of active members only) and leaves the rest.
	UpsertReads string
	// UpsertSession follows a one-row INSERT INTO mqtt_sessions of every
	// column: on an existing client_id it sets every column but client_id
	// and baseline to the new row's.
	UpsertSession string
	// UpsertPositions follows a multi-row INSERT INTO
	// mqtt_session_positions (client_id, conv_id, seq): on an existing row
	// it raises seq, never lowers it.
	UpsertPositions string
	// IsAlreadyApplied tells whether a migration statement failed only
	// because what it adds exists (a duplicate column) or what it drops is
	// gone (an index): ALTER TABLE has no IF [NOT] EXISTS in MySQL 8 or
	// SQLite, and migrations stay re-runnable.
	IsAlreadyApplied func(err error) bool
	// IsConflict tells whether err is a unique-key violation.
	IsConflict func(err error) bool
	// MaxParams caps bind parameters per statement.
	MaxParams int
	// RowChunks, when set, are the only row counts (descending, ending
	// with 1) of the group commit's multi-row statements, which are then
	// prepared once and reused (stmts.go); nil: as many rows as MaxParams
	// allows, the text built per batch.
	RowChunks []int
}
