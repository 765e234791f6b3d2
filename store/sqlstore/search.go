package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store"
)

// Message search: the message_search table (schema 0006) holds one row per
// message, its text folded in Go (store.SearchText; '' when it is not
// searchable), keyed like messages by (conv_id, seq). A search is a
// substring test (LIKE '%q%' on the folded text) over the rows of the
// caller's conversations, within their windows, newest first. Since schema
// 0009 the table is also the conversations' order of messages: its primary
// key is what makes (conv_id, seq) unique and what history pages by, and
// messages has no index of its own on (conv_id, seq), so the group commit
// writes one B-tree keyed by conversation, not two (BENCHMARKS.md).
//
// Why a scan and not an inverted index (BENCHMARKS.md, "Message search",
// has the measurements): it finds every substring of every length the same
// way on both dialects — a 1- or 2-character CJK query like 好世 included,
// which a trigram index (SQLite FTS5 trigram) cannot answer and MariaDB's
// InnoDB FULLTEXT has no n-gram parser for; it costs the send path one
// narrow multi-row insert per batch, where an n-gram table of our own costs
// a row per distinct n-gram of every message; and a frequent term is no
// slower than a rare one (FTS5 had to gather every match before sorting).
// Its cost is linear in the caller's visible messages, about 3.5 million
// rows/s on SQLite on the 2-core machine, measured.

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
		if text := searchText(m); text != "" {
			out = append(out, searchRow{m, text})
		}
	}
	return out
}

// searchText is the folded text by which m is found, "" when it is not
// searchable (a recalled message has none; store.SearchText decides the
// rest).
func searchText(m *store.Message) string {
	if m.Recalled {
		return ""
	}
	return store.SearchText(m.Type, m.Body)
}

// searchRows returns the rows of a batch's messages, every one of them
// (schema 0009), with ” as the text of those that are not searchable (a
// recall or edit record is not, and store.SearchText leaves out its type
// anyway).
func searchRows(batch []store.Write) []searchRow {
	out := make([]searchRow, len(batch))
	for i, w := range batch {
		out[i].m = w.Msg
		if !isRecord(w) {
			out[i].text = searchText(w.Msg)
		}
	}
	return out
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
// the changed message's text becomes its new one, ” once recalled.
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
	_, err := tx.ExecContext(ctx, `UPDATE message_search SET content = ? WHERE conv_id = ? AND seq = ?`, searchText(m), m.Conv, m.Seq)
	return s.wrap("reindex message", err)
}

// backfillSearch indexes the searchable messages stored before schema
// 0006, a page of them per statement (keyset by id); rows already there are
// kept. (Schema 0009 gives the other messages their ” rows, in SQL.)
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
