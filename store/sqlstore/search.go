package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store"
)

// Message search: the message_search table (schema 0006) holds one row per
// searchable message, its text folded in Go (store.SearchText), keyed like
// messages by (conv_id, seq). A search is a substring test (LIKE '%q%' on
// the folded text) over the rows of the caller's conversations, within
// their windows, newest first.
//
// Why a scan and not an inverted index (BENCHMARKS.md, "Message search",
// has the measurements): it finds every substring of every length the same
// way on both dialects — a 1- or 2-character CJK query like 好世 included,
// which a trigram index (SQLite FTS5 trigram) cannot answer and MariaDB's
// InnoDB FULLTEXT has no n-gram parser for; it costs the send path one
// narrow multi-row insert per batch, where an n-gram table of our own costs
// a row per distinct n-gram of every message; and a frequent term is no
// slower than a rare one (FTS5 had to gather every match before sorting).
// Its cost is linear in the caller's visible searchable messages, about
// 3.5 million rows/s on SQLite on the 2-core machine, measured.

// searchCols are message_search's columns, in insert order.
const searchCols = `conv_id, seq, ts, msg_id, content`

// goSteps are the migrations' Go parts, by version: each runs right after
// its SQL file and, like the statements, may run again after an
// interruption.
var goSteps = map[int64]func(ctx context.Context, db *sqlx.DB, d Dialect) error{
	6: backfillSearch,
}

// searchRow is one row of message_search.
type searchRow struct {
	m    *store.Message
	text string
}

// searchRowsOf returns the search rows of msgs: those with a searchable
// text (a recalled message has none).
func searchRowsOf(msgs []*store.Message) []searchRow {
	var out []searchRow
	for _, m := range msgs {
		if m.Recalled {
			continue
		}
		if text := store.SearchText(m.Type, m.Body); text != "" {
			out = append(out, searchRow{m, text})
		}
	}
	return out
}

// searchRows returns the search rows of a batch's new messages (a recall
// or edit record is not searchable, and store.SearchText leaves out its
// type anyway).
func searchRows(batch []store.Write) []searchRow {
	msgs := make([]*store.Message, 0, len(batch))
	for _, w := range batch {
		if !isRecord(w) {
			msgs = append(msgs, w.Msg)
		}
	}
	return searchRowsOf(msgs)
}

// insertSearchRows inserts search rows; backfillSearchRows too, but keeps
// the rows already there.
var (
	insertSearchRows = &rowStmt{"index messages", 5, func(_ Dialect, n int) string {
		return `INSERT INTO message_search (` + searchCols + `) VALUES ` + placeholders(n, 5)
	}}
	backfillSearchRows = &rowStmt{"index existing messages", 5, func(d Dialect, n int) string {
		return d.InsertIgnore + ` INTO message_search (` + searchCols + `) VALUES ` + placeholders(n, 5)
	}}
)

// searchArgs are the values of rows for insertSearchRows.
func searchArgs(rows []searchRow) []any {
	args := make([]any, 0, 5*len(rows))
	for _, r := range rows {
		args = append(args, r.m.Conv, r.m.Seq, r.m.TS, r.m.ID, r.text)
	}
	return args
}

// reindexChange follows a recall or edit applied in place (applyChange):
// the changed message's row goes, and an edited one's comes back with its
// new text.
func (s *Store) reindexChange(ctx context.Context, tx *sqlx.Tx, w store.Write) error {
	id := w.Recall
	if w.Edit != nil {
		id = w.Edit.ID
	}
	if id == "" {
		return nil
	}
	var rows []msgRow
	if err := tx.SelectContext(ctx, &rows, `SELECT `+msgCols+` FROM messages WHERE id = ? AND conv_id = ?`, id, w.Msg.Conv); err != nil {
		return s.wrap("reindex message", err)
	}
	if len(rows) == 0 {
		return nil
	}
	m := rows[0].msg()
	if _, err := tx.ExecContext(ctx, `DELETE FROM message_search WHERE conv_id = ? AND seq = ?`, m.Conv, m.Seq); err != nil {
		return s.wrap("reindex message", err)
	}
	return s.wrap("reindex message", s.execRows(ctx, tx, insertSearchRows, searchArgs(searchRowsOf([]*store.Message{m}))))
}

// backfillSearch indexes the messages stored before schema 0006, a page of
// them per statement (keyset by id); rows already there are kept.
func backfillSearch(ctx context.Context, db *sqlx.DB, d Dialect) error {
	const page = 2000
	st := New(db, d)
	after := ""
	for {
		var rows []msgRow
		if err := db.SelectContext(ctx, &rows, `SELECT `+msgCols+` FROM messages WHERE id > ? AND recalled = 0 AND type IN ('text', 'file', 'location') ORDER BY id LIMIT ?`,
			after, page); err != nil {
			return fmt.Errorf("index existing messages: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		if err := st.execRows(ctx, nil, backfillSearchRows, searchArgs(searchRowsOf(messages(rows)))); err != nil {
			return fmt.Errorf("index existing messages: %w", err)
		}
		after = rows[len(rows)-1].ID
	}
}

// likeContains is the LIKE pattern (escape character !) matching any text
// that contains s.
func likeContains(s string) string {
	return "%" + strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s) + "%"
}

// Search pages the messages userID may see whose folded text contains
// q.Text, newest first (store.Messages). The window is the one
// store.Conversation describes: seqs above min_seq and, for a former member
// (active 0), up to read_seq, which stays at their leave.
func (s *Store) Search(ctx context.Context, userID string, q store.SearchQuery) ([]*store.Message, error) {
	where := `WHERE cm.user_id = ? AND s.seq > cm.min_seq AND (cm.active = 1 OR s.seq <= cm.read_seq) AND s.content LIKE ? ESCAPE '!'`
	args := []any{userID, likeContains(q.Text)}
	if q.Conv != "" {
		where += ` AND cm.conv_id = ?`
		args = append(args, q.Conv)
	}
	if c := q.Before; c != nil {
		where += ` AND (s.ts < ? OR (s.ts = ? AND s.msg_id < ?))`
		args = append(args, c.TS, c.TS, c.ID)
	}
	args = append(args, q.Limit)
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT s.msg_id FROM conversation_members cm JOIN message_search s ON s.conv_id = cm.conv_id `+
		where+` ORDER BY s.ts DESC, s.msg_id DESC LIMIT ?`, args...); err != nil {
		return nil, s.wrap("search", err)
	}
	byID, err := s.MessagesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Message, 0, len(ids))
	for _, id := range ids {
		// A recall that committed between the two reads is not a result.
		if m := byID[id]; m != nil && !m.Recalled {
			out = append(out, m)
		}
	}
	return out, nil
}
