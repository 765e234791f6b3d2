package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mqim/mqim/store"
)

type convRow struct {
	ID        string `db:"id"`
	Kind      string `db:"kind"`
	LastSeq   int64  `db:"last_seq"`
	LastMsgID string `db:"last_msg_id"`
	UpdatedAt int64  `db:"updated_at"`
	ReadSeq   int64  `db:"read_seq"`
	MinSeq    int64  `db:"min_seq"`
	Pinned    bool   `db:"pinned"`
	Muted     bool   `db:"muted"`
	Hidden    bool   `db:"hidden"`
	Active    bool   `db:"active"`
}

// convUpdated is when a conversation last changed for its member: the later
// of its last message (for a former member, their leave) and the member's
// own changes (a read, a pin, mute or hide).
func (s *Store) convUpdated() string {
	return `(CASE WHEN cm.active = 1 THEN ` + s.d.Greatest + `(c.updated_at, cm.updated_at) ELSE ` + s.d.Greatest + `(cm.left_at, cm.updated_at) END)`
}

func (s *Store) convSelect() string {
	return `SELECT c.id, c.kind, c.last_seq, c.last_msg_id, ` + s.convUpdated() + ` AS updated_at, cm.read_seq, cm.min_seq, cm.pinned, cm.muted, cm.hidden, cm.active
	FROM conversation_members cm JOIN conversations c ON c.id = cm.conv_id `
}

// Conversations lists a user's conversation rows as stored: pinned first,
// then newest first by the user's updated time (for a former member, when
// they left), ties by id; filtered by q.UpdatedAfter and the q.After
// cursor, at most q.Limit (store.Messages).
func (s *Store) Conversations(ctx context.Context, userID string, q store.ConvQuery) ([]store.Conversation, error) {
	convUpdated := s.convUpdated()
	where := `WHERE cm.user_id = ? AND ` + convUpdated + ` > ?`
	args := []any{userID, q.UpdatedAfter}
	if c := q.After; c != nil {
		// After (pinned, ts, id) in the order pinned DESC, ts DESC, id ASC.
		later := `(` + convUpdated + ` < ? OR (` + convUpdated + ` = ? AND c.id > ?))`
		if c.Pinned {
			where += ` AND (cm.pinned = 0 OR ` + later + `)`
		} else {
			where += ` AND cm.pinned = 0 AND ` + later
		}
		args = append(args, c.UpdatedAt, c.UpdatedAt, c.ID)
	}
	args = append(args, q.Limit)
	var rows []convRow
	if err := s.db.SelectContext(ctx, &rows, s.convSelect()+where+` ORDER BY cm.pinned DESC, `+convUpdated+` DESC, c.id LIMIT ?`, args...); err != nil {
		return nil, s.wrap("conversations", err)
	}
	return s.convs(ctx, rows)
}

// Unreads lists the user's active conversations with unread messages, by id
// (store.Messages).
func (s *Store) Unreads(ctx context.Context, userID string) ([]store.Unread, error) {
	out := []store.Unread{}
	err := s.db.SelectContext(ctx, &out, `SELECT cm.conv_id, c.last_seq - cm.read_seq AS unread, cm.muted
		FROM conversation_members cm JOIN conversations c ON c.id = cm.conv_id
		WHERE cm.user_id = ? AND cm.active = 1 AND c.last_seq > cm.read_seq ORDER BY cm.conv_id`, userID)
	return out, s.wrap("unread", err)
}

// Conversation returns one user's row of one conversation as stored, or
// ErrNotFound when the user has none (store.Messages).
func (s *Store) Conversation(ctx context.Context, userID, conv string) (*store.Conversation, error) {
	var rows []convRow
	if err := s.db.SelectContext(ctx, &rows, s.convSelect()+`WHERE cm.user_id = ? AND cm.conv_id = ?`, userID, conv); err != nil {
		return nil, s.wrap("conversation", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("conversation %s: %w", conv, store.ErrNotFound)
	}
	cs, err := s.convs(ctx, rows)
	if err != nil {
		return nil, err
	}
	return &cs[0], nil
}

// convs makes Conversations of rows, as stored, with the last message of
// each.
func (s *Store) convs(ctx context.Context, rows []convRow) ([]store.Conversation, error) {
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.LastMsgID != "" {
			ids = append(ids, r.LastMsgID)
		}
	}
	ms, err := selectIn[msgRow](ctx, s, "last messages", `SELECT `+msgCols+` FROM messages WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	last := make(map[string]*store.Message, len(ms))
	for _, m := range messages(ms) {
		last[m.ID] = m
	}
	out := make([]store.Conversation, len(rows))
	for i, r := range rows {
		out[i] = store.Conversation{ID: r.ID, Kind: r.Kind, LastSeq: r.LastSeq, ReadSeq: r.ReadSeq, MinSeq: r.MinSeq,
			Pinned: r.Pinned, Muted: r.Muted, Hidden: r.Hidden, Active: r.Active, UpdatedAt: r.UpdatedAt, LastMessage: last[r.LastMsgID]}
	}
	return out, nil
}

// MarkRead raises the user's read_seq to seq, never lowering it, never
// above last_seq, and leaving a former member's at their leave. It returns
// the resulting read_seq and whether it moved (then the member's updated
// time moved too); ErrNotFound when the user has no row of conv
// (store.Messages).
func (s *Store) MarkRead(ctx context.Context, userID, conv string, seq int64) (int64, bool, error) {
	// READ COMMITTED: under MySQL's REPEATABLE READ the final SELECT read the
	// snapshot taken before the UPDATE, so when a concurrent MarkRead had
	// already raised read_seq it returned the old, lower value.
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, false, s.wrap("mark read", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var lastSeq int64
	if err := tx.GetContext(ctx, &lastSeq, `SELECT last_seq FROM conversations WHERE id = ?`, conv); err != nil {
		return 0, false, s.wrap("mark read", err)
	}
	if seq > lastSeq {
		seq = lastSeq
	}
	// Only a raise counts (and moves updated_at); a former member (active =
	// 0) has read up to the leave event, and that stays.
	res, err := tx.ExecContext(ctx, `UPDATE conversation_members SET read_seq = ?, updated_at = ? WHERE user_id = ? AND conv_id = ? AND active = 1 AND read_seq < ?`,
		seq, now(), userID, conv, seq)
	if err != nil {
		return 0, false, s.wrap("mark read", err)
	}
	n, _ := res.RowsAffected()
	var read int64
	if err := tx.GetContext(ctx, &read, `SELECT read_seq FROM conversation_members WHERE user_id = ? AND conv_id = ?`, userID, conv); err != nil {
		return 0, false, s.wrap("mark read", err)
	}
	return read, n > 0, s.wrap("mark read", tx.Commit())
}

// SetConvPrefs changes the user's pinned/muted/hidden flags that p sets
// (nil fields stay) and reports whether any changed (then the member's
// updated time moved too); ErrNotFound when the user has no row of conv
// (store.Messages).
func (s *Store) SetConvPrefs(ctx context.Context, userID, conv string, p store.ConvPrefs) (bool, error) {
	var sets, differ []string
	var setArgs, differArgs []any
	for _, f := range []struct {
		col string
		v   *bool
	}{{"pinned", p.Pinned}, {"muted", p.Muted}, {"hidden", p.Hidden}} {
		if f.v != nil {
			sets = append(sets, f.col+" = ?")
			setArgs = append(setArgs, *f.v)
			differ = append(differ, f.col+" <> ?")
			differArgs = append(differArgs, *f.v)
		}
	}
	if _, err := s.Conversation(ctx, userID, conv); err != nil {
		return false, err
	}
	if len(sets) == 0 {
		return false, nil
	}
	args := append(append(setArgs, now(), userID, conv), differArgs...)
	res, err := s.db.ExecContext(ctx, `UPDATE conversation_members SET `+strings.Join(sets, ", ")+`, updated_at = ? WHERE user_id = ? AND conv_id = ? AND (`+
		strings.Join(differ, " OR ")+`)`, args...)
	if err != nil {
		return false, s.wrap("conversation prefs", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// PushStates returns, for each of userIDs, whether conv is muted for them
// and their unread total over the unmuted conversations they are active in
// (store.Messages). Users with neither are absent from the map. Two
// queries per chunk of users, whatever their number of conversations.
func (s *Store) PushStates(ctx context.Context, conv string, userIDs []string) (map[string]store.PushState, error) {
	type row struct {
		UserID string `db:"user_id"`
		Unread int64  `db:"unread"`
	}
	rows, err := selectIn[row](ctx, s, "unread totals", `SELECT cm.user_id, SUM(c.last_seq - cm.read_seq) AS unread
		FROM conversation_members cm JOIN conversations c ON c.id = cm.conv_id
		WHERE cm.user_id IN (?) AND cm.muted = 0 AND cm.active = 1 AND c.last_seq > cm.read_seq
		GROUP BY cm.user_id`, userIDs)
	if err != nil {
		return nil, err
	}
	muted, err := selectIn[string](ctx, s, "muted members",
		`SELECT user_id FROM conversation_members WHERE conv_id = ? AND muted = 1 AND user_id IN (?)`, userIDs, conv)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.PushState, len(rows)+len(muted))
	for _, r := range rows {
		out[r.UserID] = store.PushState{Unread: r.Unread}
	}
	for _, uid := range muted {
		st := out[uid]
		st.Muted = true
		out[uid] = st
	}
	return out, nil
}

// Contacts returns which of others share a conversation with userID, both
// active in it (store.Messages): one query per chunk of others.
func (s *Store) Contacts(ctx context.Context, userID string, others []string) (map[string]bool, error) {
	ids, err := selectIn[string](ctx, s, "contacts", `SELECT DISTINCT b.user_id FROM conversation_members a
		JOIN conversation_members b ON b.conv_id = a.conv_id
		WHERE a.user_id = ? AND a.active = 1 AND b.active = 1 AND b.user_id IN (?)`, others, userID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
