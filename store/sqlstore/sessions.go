package sqlstore

import (
	"context"
	"errors"

	"github.com/mqim/mqim/store"
)

const sessionCols = `client_id, user_id, expiry_s, baseline, disconnected_at, updated_at, node, connected_at`

// PutSession creates or updates a persistent session, keeping the stored
// baseline, which it reads back into s (store.Sessions).
func (s *Store) PutSession(ctx context.Context, sess *store.Session) error {
	sess.UpdatedAt = now()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("put session", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.NamedExecContext(ctx, `INSERT INTO mqtt_sessions (`+sessionCols+`)
		VALUES (:client_id, :user_id, :expiry_s, :baseline, :disconnected_at, :updated_at, :node, :connected_at) `+s.d.UpsertSession, sess); err != nil {
		return s.wrap("put session", err)
	}
	if err := tx.GetContext(ctx, &sess.Baseline, `SELECT baseline FROM mqtt_sessions WHERE client_id = ?`, sess.ClientID); err != nil {
		return s.wrap("put session", err)
	}
	return s.wrap("put session", tx.Commit())
}

// Session returns one session or ErrNotFound (store.Sessions).
func (s *Store) Session(ctx context.Context, clientID string) (*store.Session, error) {
	var sess store.Session
	err := s.db.GetContext(ctx, &sess, `SELECT `+sessionCols+` FROM mqtt_sessions WHERE client_id = ?`, clientID)
	if err != nil {
		return nil, s.wrap("session "+clientID, err)
	}
	return &sess, nil
}

// ListSessions returns every session by client id (store.Sessions).
func (s *Store) ListSessions(ctx context.Context) ([]store.Session, error) {
	out := []store.Session{}
	err := s.db.SelectContext(ctx, &out, `SELECT `+sessionCols+` FROM mqtt_sessions ORDER BY client_id`)
	return out, s.wrap("list sessions", err)
}

// DeleteSession removes a session and its positions (store.Sessions).
func (s *Store) DeleteSession(ctx context.Context, clientID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("delete session", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_positions WHERE client_id = ?`, clientID); err != nil {
		return s.wrap("delete session", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_sessions WHERE client_id = ?`, clientID); err != nil {
		return s.wrap("delete session", err)
	}
	return s.wrap("delete session", tx.Commit())
}

// EndSession records a connection's end if it still owns the session
// (store.Sessions).
func (s *Store) EndSession(ctx context.Context, sess *store.Session) (bool, error) {
	sess.UpdatedAt = now()
	res, err := s.db.ExecContext(ctx, `UPDATE mqtt_sessions SET disconnected_at = ?, expiry_s = ?, updated_at = ?
		WHERE client_id = ? AND node = ? AND connected_at = ?`,
		sess.DisconnectedAt, sess.Expiry, sess.UpdatedAt, sess.ClientID, sess.Node, sess.ConnectedAt)
	if err != nil {
		return false, s.wrap("end session", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return n > 0, s.wrap("end session", err)
	}
	if _, err := s.Session(ctx, sess.ClientID); !errors.Is(err, store.ErrNotFound) {
		return false, err // owned by a later connection (or the read failed)
	}
	return true, s.PutSession(ctx, sess)
}

// EndNodeSessions marks the sessions still connected through a dead node
// disconnected (store.Sessions).
func (s *Store) EndNodeSessions(ctx context.Context, node string, at int64) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE mqtt_sessions SET disconnected_at = ?, updated_at = ?
		WHERE node = ? AND disconnected_at = 0`, at, now(), node)
	if err != nil {
		return 0, s.wrap("end node sessions", err)
	}
	n, err := res.RowsAffected()
	return n, s.wrap("end node sessions", err)
}

// DeleteExpiredSessions removes expired sessions and their positions
// (store.Sessions).
func (s *Store) DeleteExpiredSessions(ctx context.Context, now int64) (int64, error) {
	const expired = `disconnected_at > 0 AND disconnected_at + expiry_s * 1000 < ?`
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, s.wrap("delete expired sessions", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_positions WHERE client_id IN
		(SELECT client_id FROM mqtt_sessions WHERE `+expired+`)`, now); err != nil {
		return 0, s.wrap("delete expired sessions", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM mqtt_sessions WHERE `+expired, now)
	if err != nil {
		return 0, s.wrap("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.wrap("delete expired sessions", err)
	}
	return n, s.wrap("delete expired sessions", tx.Commit())
}

// SavePositions raises positions, one multi-row upsert per chunk, in one
// transaction (store.Sessions).
func (s *Store) SavePositions(ctx context.Context, ps []store.Position) error {
	if len(ps) == 0 {
		return nil
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("save positions", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	for _, chunk := range chunks(ps, s.d.MaxParams/3) {
		args := make([]any, 0, 3*len(chunk))
		for _, p := range chunk {
			args = append(args, p.ClientID, p.Conv, p.Seq)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mqtt_session_positions (client_id, conv_id, seq) VALUES `+
			placeholders(len(chunk), 3)+` `+s.d.UpsertPositions, args...); err != nil {
			return s.wrap("save positions", err)
		}
	}
	return s.wrap("save positions", tx.Commit())
}

// Positions returns a session's positions by conversation (store.Sessions).
func (s *Store) Positions(ctx context.Context, clientID string) (map[string]int64, error) {
	var rows []store.Position
	if err := s.db.SelectContext(ctx, &rows, `SELECT client_id, conv_id, seq FROM mqtt_session_positions WHERE client_id = ?`, clientID); err != nil {
		return nil, s.wrap("positions", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Conv] = r.Seq
	}
	return out, nil
}
