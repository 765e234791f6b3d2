package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store"
)

const msgCols = `id, conv_id, seq, sender, to_id, COALESCE(cid, '') AS cid, type, body, reply_to, mentions, ext, ts, edited_at, recalled`

// msgColsOf is msgCols of the table named t in a join.
func msgColsOf(t string) string {
	return t + `.id, ` + t + `.conv_id, ` + t + `.seq, ` + t + `.sender, ` + t + `.to_id, COALESCE(` + t + `.cid, '') AS cid, ` + t + `.type, ` +
		t + `.body, ` + t + `.reply_to, ` + t + `.mentions, ` + t + `.ext, ` + t + `.ts, ` + t + `.edited_at, ` + t + `.recalled`
}

type msgRow struct {
	store.Message
	MentionsCSV string `db:"mentions"`
}

func (r *msgRow) msg() *store.Message {
	m := r.Message
	if r.MentionsCSV != "" {
		m.Mentions = strings.Split(r.MentionsCSV, ",")
	}
	return &m
}

func (s *Store) selectMessages(ctx context.Context, q string, args ...any) ([]*store.Message, error) {
	var rows []msgRow
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, s.wrap("messages", err)
	}
	return messages(rows), nil
}

func messages(rows []msgRow) []*store.Message {
	out := make([]*store.Message, len(rows))
	for i := range rows {
		out[i] = rows[i].msg()
	}
	return out
}

// LastSeqs returns the stored last_seq of each existing conversation among
// ids; missing ones are absent from the map (store.Messages).
func (s *Store) LastSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	type row struct {
		ID      string `db:"id"`
		LastSeq int64  `db:"last_seq"`
	}
	rows, err := selectIn[row](ctx, s, "last seqs", `SELECT id, last_seq FROM conversations WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.ID] = r.LastSeq
	}
	return out, nil
}

// MessagesByCID returns the stored messages matching (sender, cid) pairs,
// keyed by sender+"\x00"+cid; pairs with no message are absent
// (store.Messages).
func (s *Store) MessagesByCID(ctx context.Context, keys [][2]string) (map[string]*store.Message, error) {
	out := map[string]*store.Message{}
	for _, chunk := range chunks(keys, s.d.MaxParams/2) {
		var b strings.Builder
		args := make([]any, 0, 2*len(chunk))
		for i, k := range chunk {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString("(sender = ? AND cid = ?)")
			args = append(args, k[0], k[1])
		}
		ms, err := s.selectMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE `+b.String(), args...)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out[m.From+"\x00"+m.CID] = m
		}
	}
	return out, nil
}

// MessagesByID returns the stored messages among ids, keyed by id
// (store.Messages).
func (s *Store) MessagesByID(ctx context.Context, ids []string) (map[string]*store.Message, error) {
	rows, err := selectIn[msgRow](ctx, s, "messages by id", `SELECT `+msgCols+` FROM messages WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.Message, len(rows))
	for _, m := range messages(rows) {
		out[m.ID] = m
	}
	return out, nil
}

// Commit stores a batch atomically, all or none, and returns ErrConflict
// when a unique key is taken: a (conv, seq), a (sender, cid), a message or
// group id, a membership (store.Messages). Every write names its Kind, and
// a group write its group in Msg.To; a batch with one that does not is
// refused. Each write's Reader, if any, has its read position raised to the
// message (an active member's only); nobody else's moves.
//
// One transaction: a multi-row insert of the messages and one of their
// message_search rows, then one upsert per conversation touched, the membership
// changes and one upsert of the read positions, so a batch of N messages
// costs a handful of statements.
func (s *Store) Commit(ctx context.Context, batch []store.Write) error {
	if len(batch) == 0 {
		return nil
	}
	for _, w := range batch {
		if err := checkWrite(w); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	// READ COMMITTED: under MySQL's REPEATABLE READ, the update of a
	// conversation row that does not exist yet takes a gap lock, and two
	// batches opening different conversations deadlock on their inserts.
	// SQLite ignores the level (its writers are serialized anyway).
	// Search rows are folded before the transaction, not while it holds
	// locks.
	idx := searchRows(batch)
	if err := s.stmts.prepare(ctx, s.db, s.d); err != nil {
		return s.wrap("commit", err)
	}
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return s.wrap("commit", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := s.commit(ctx, tx, batch, idx); err != nil {
		return err
	}
	return s.wrap("commit", tx.Commit())
}

// checkWrite refuses a Write that does not say where it goes: its kind, and
// for a group its id (Msg.To), which group changes need.
func checkWrite(w store.Write) error {
	if w.Msg == nil {
		return errors.New("write without a message")
	}
	switch w.Kind {
	case store.KindGroup:
		if w.Msg.To == "" {
			return fmt.Errorf("message %s: a group write names its group in Msg.To", w.Msg.ID)
		}
	case store.KindDirect:
		if w.NewGroup != nil || len(w.AddMembers) > 0 || len(w.RemoveMembers) > 0 || len(w.UpdateMembers) > 0 ||
			w.UpdateGroup != nil || w.DissolveGroup {
			return fmt.Errorf("message %s: group changes in a direct conversation", w.Msg.ID)
		}
	default:
		return fmt.Errorf("message %s: kind %q, want %q or %q", w.Msg.ID, w.Kind, store.KindDirect, store.KindGroup)
	}
	if w.Recall != "" && w.Edit != nil {
		return fmt.Errorf("message %s: both a recall and an edit", w.Msg.ID)
	}
	return nil
}

// isRecord tells whether w's message is a recall or edit record: it
// changes another message and never becomes its conversation's last
// message.
func isRecord(w store.Write) bool { return w.Recall != "" || w.Edit != nil }

// applyChange changes the message a recall or edit record names, in place:
// only a message of the record's conversation that is not recalled. When
// none is changed because that message is recalled (or absent) it returns
// ErrConflict, so the caller re-reads and decides again (another writer
// recalled it first).
func (s *Store) applyChange(ctx context.Context, tx *sqlx.Tx, w store.Write) error {
	var id string
	var res sql.Result
	var err error
	switch {
	case w.Recall != "":
		id = w.Recall
		res, err = tx.ExecContext(ctx, `UPDATE messages SET recalled = 1, body = 'null', ext = NULL WHERE id = ? AND conv_id = ? AND recalled = 0`,
			id, w.Msg.Conv)
	case w.Edit != nil:
		id = w.Edit.ID
		res, err = tx.ExecContext(ctx, `UPDATE messages SET body = ?, edited_at = ? WHERE id = ? AND conv_id = ? AND recalled = 0`,
			string(w.Edit.Body), w.Msg.TS, id, w.Msg.Conv)
	default:
		return nil
	}
	if err != nil {
		return s.wrap("change message", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	// MySQL counts only rows whose values changed: an edit that sets the
	// same body and time changes none and is no conflict.
	var recalled []bool
	if err := tx.SelectContext(ctx, &recalled, `SELECT recalled FROM messages WHERE id = ? AND conv_id = ?`, id, w.Msg.Conv); err != nil {
		return s.wrap("change message", err)
	}
	if len(recalled) == 0 || recalled[0] {
		return fmt.Errorf("change message %s: recalled or not in %s: %w", id, w.Msg.Conv, store.ErrConflict)
	}
	return nil
}

// The group commit's statements, for n rows (execRows).
var (
	insertMessages = &rowStmt{"insert messages", 14, func(_ Dialect, n int) string {
		return `INSERT INTO messages (id, conv_id, seq, sender, to_id, cid, type, body, reply_to, mentions, ext, ts, edited_at, recalled) VALUES ` +
			placeholders(n, 14)
	}}
	upsertConvs = &rowStmt{"upsert conversations", 5, func(d Dialect, n int) string {
		return `INSERT INTO conversations (id, kind, last_seq, last_msg_id, updated_at) VALUES ` + placeholders(n, 5) + ` ` + d.UpsertConvs
	}}
	// A new message brings a hidden conversation back.
	unhideConvs = &rowStmt{"unhide conversations", 1, func(_ Dialect, n int) string {
		return `UPDATE conversation_members SET hidden = 0 WHERE conv_id IN (` + strings.Repeat("?,", n-1) + `?) AND hidden = 1 AND active = 1`
	}}
	insertParticipants = &rowStmt{"insert participants", 4, func(d Dialect, n int) string {
		return d.InsertIgnore + ` INTO conversation_members (user_id, conv_id, read_seq, min_seq) VALUES ` + placeholders(n, 4)
	}}
	upsertReads = &rowStmt{"upsert read positions", 4, func(d Dialect, n int) string {
		return `INSERT INTO conversation_members (user_id, conv_id, read_seq, min_seq) VALUES ` + placeholders(n, 4) + ` ` + d.UpsertReads
	}}
)

func (s *Store) commit(ctx context.Context, tx *sqlx.Tx, batch []store.Write, idx []searchRow) error {
	const per = 14
	args := make([]any, 0, per*len(batch))
	for _, w := range batch {
		m := w.Msg
		args = append(args, m.ID, m.Conv, m.Seq, m.From, m.To, nullString(m.CID), m.Type, string(m.Body),
			m.ReplyTo, strings.Join(m.Mentions, ","), m.Ext, m.TS, m.EditedAt, m.Recalled)
	}
	if err := s.execRows(ctx, tx, insertMessages, args); err != nil {
		return s.wrap("insert messages", err)
	}
	// Their rows in message_search, the conversations' order and search
	// text (search.go), whose primary key refuses a (conv_id, seq) taken:
	// the arbiter between writers.
	if err := s.wrap("index messages", s.execRows(ctx, tx, insertSearchRows, searchArgs(idx))); err != nil {
		return err
	}
	// Group creation, membership changes, recalls and edits are rare: a
	// statement each, in seq order.
	for _, w := range batch {
		if err := s.applyGroupChanges(ctx, tx, w); err != nil {
			return err
		}
		if err := s.applyChange(ctx, tx, w); err != nil {
			return err
		}
		if err := s.reindexChange(ctx, tx, w); err != nil {
			return err
		}
	}
	// Per conversation, the batch's last message (batches are in seq order)
	// and its last content message: a recall or edit record moves last_seq
	// and updated_at but not last_msg_id ('' keeps the stored one), so the
	// last message shown stays the last real one, as changed in place.
	// The unique (conv_id, seq) of message_search is the arbiter between
	// writers; the upsert only ever moves last_seq forward.
	last := map[string]store.Write{}
	lastContent := map[string]string{}
	var convIDs []any
	for _, w := range batch {
		if _, ok := last[w.Msg.Conv]; !ok {
			convIDs = append(convIDs, w.Msg.Conv)
		}
		last[w.Msg.Conv] = w
		if !isRecord(w) {
			lastContent[w.Msg.Conv] = w.Msg.ID
		}
	}
	convArgs := make([]any, 0, 5*len(convIDs))
	for _, id := range convIDs {
		w := last[id.(string)]
		convArgs = append(convArgs, id, w.Kind, w.Msg.Seq, lastContent[w.Msg.Conv], w.Msg.TS)
	}
	if err := s.execRows(ctx, tx, upsertConvs, convArgs); err != nil {
		return s.wrap("upsert conversations", err)
	}
	if err := s.execRows(ctx, tx, unhideConvs, convIDs); err != nil {
		return s.wrap("unhide conversations", err)
	}
	// Participants join (if not members yet) from their message on: in a
	// direct conversation it is unread, a group join event is not. Then the
	// readers' positions move up to their messages (the upsert raises only
	// active members: a former member's position stays at the leave).
	var joins []any
	for _, w := range batch {
		for _, uid := range w.Participants {
			read := w.Msg.Seq - 1
			if w.Kind == store.KindGroup {
				read = w.Msg.Seq
			}
			joins = append(joins, uid, w.Msg.Conv, read, w.Msg.Seq-1)
		}
	}
	if err := s.execRows(ctx, tx, insertParticipants, joins); err != nil {
		return s.wrap("insert participants", err)
	}
	type key struct{ user, conv string }
	reads := map[key]int64{}
	var order []key
	for _, w := range batch {
		if w.Reader == "" {
			continue
		}
		k := key{w.Reader, w.Msg.Conv}
		if _, ok := reads[k]; !ok {
			order = append(order, k)
		}
		reads[k] = max(reads[k], w.Msg.Seq)
	}
	readArgs := make([]any, 0, 4*len(order))
	for _, k := range order {
		readArgs = append(readArgs, k.user, k.conv, reads[k], reads[k]-1)
	}
	if err := s.execRows(ctx, tx, upsertReads, readArgs); err != nil {
		return s.wrap("upsert read positions", err)
	}
	return nil
}

// applyGroupChanges writes a Write's group creation and membership changes,
// to the group Msg.To (checkWrite let only group writes carry any).
func (s *Store) applyGroupChanges(ctx context.Context, tx *sqlx.Tx, w store.Write) error {
	m := w.Msg
	gid := m.To
	if g := w.NewGroup; g != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO chat_groups (`+groupCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			g.ID, g.Name, g.Avatar, g.Notice, g.Owner, g.JoinPolicy, g.MuteAll, g.Ext, g.Dissolved, g.CreatedAt, g.UpdatedAt); err != nil {
			return s.wrap("insert group", err)
		}
	}
	for _, mem := range w.AddMembers {
		if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (`+memberCols+`) VALUES (?,?,?,?,?,?)`,
			gid, mem.UserID, mem.Role, mem.MutedUntil, m.Seq, m.TS); err != nil {
			return s.wrap("insert member", err)
		}
		// Joiners have read up to their join event and see history from it on.
		if err := s.joinConv(ctx, tx, mem.UserID, m.Conv, m.Seq, m.Seq-1); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_requests WHERE group_id = ? AND user_id = ?`, gid, mem.UserID); err != nil {
			return s.wrap("delete join request", err)
		}
	}
	for _, mem := range w.UpdateMembers {
		if _, err := tx.ExecContext(ctx, `UPDATE group_members SET role = ?, muted_until = ? WHERE group_id = ? AND user_id = ?`,
			mem.Role, mem.MutedUntil, gid, mem.UserID); err != nil {
			return s.wrap("update member", err)
		}
	}
	for _, uid := range w.RemoveMembers {
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, gid, uid); err != nil {
			return s.wrap("delete member", err)
		}
		// The leaver keeps history up to the leave event and has read it.
		if _, err := tx.ExecContext(ctx, `UPDATE conversation_members SET active = 0, read_seq = ?, left_at = ? WHERE user_id = ? AND conv_id = ?`, m.Seq, m.TS, uid, m.Conv); err != nil {
			return s.wrap("leave conversation", err)
		}
	}
	return s.applyGroupSettings(ctx, tx, w)
}

// applyGroupSettings writes a Write's group update and dissolution.
func (s *Store) applyGroupSettings(ctx context.Context, tx *sqlx.Tx, w store.Write) error {
	m := w.Msg
	gid := m.To
	if g := w.UpdateGroup; g != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE chat_groups SET name = ?, avatar = ?, notice = ?, owner = ?, join_policy = ?, mute_all = ?, ext = ?, updated_at = ? WHERE id = ?`,
			g.Name, g.Avatar, g.Notice, g.Owner, g.JoinPolicy, g.MuteAll, g.Ext, g.UpdatedAt, gid); err != nil {
			return s.wrap("update group", err)
		}
	}
	if !w.DissolveGroup {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE chat_groups SET dissolved = 1, updated_at = ? WHERE id = ?`, m.TS, gid); err != nil {
		return s.wrap("dissolve group", err)
	}
	// Every member leaves at the dissolve message, as with a leave.
	if _, err := tx.ExecContext(ctx, `UPDATE conversation_members SET active = 0, read_seq = ?, left_at = ? WHERE conv_id = ? AND active = 1`, m.Seq, m.TS, m.Conv); err != nil {
		return s.wrap("dissolve group", err)
	}
	for _, q := range []string{`DELETE FROM group_members WHERE group_id = ?`, `DELETE FROM group_requests WHERE group_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, gid); err != nil {
			return s.wrap("dissolve group", err)
		}
	}
	return nil
}

// joinConv makes the user an active member of the conversation, reading from
// minSeq on, with read_seq at readSeq.
func (s *Store) joinConv(ctx context.Context, tx *sqlx.Tx, uid, conv string, readSeq, minSeq int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE conversation_members SET read_seq = ?, min_seq = ?, active = 1, hidden = 0, left_at = 0 WHERE user_id = ? AND conv_id = ?`,
		readSeq, minSeq, uid, conv)
	if err != nil {
		return s.wrap("join conversation", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO conversation_members (user_id, conv_id, read_seq, min_seq) VALUES (?,?,?,?)`, uid, conv, readSeq, minSeq)
	return s.wrap("join conversation", err)
}

// Messages pages a conversation: the rows with After < seq < Before
// (Before 0: no upper bound), ascending, or descending when Desc, at most
// Limit (store.Messages). An unknown conversation has none.
func (s *Store) Messages(ctx context.Context, conv string, q store.MsgQuery) ([]*store.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	// A range of message_search's primary key, the conversation's order
	// (schema 0009), and each message by id.
	return s.selectMessages(ctx, `SELECT `+msgColsOf("m")+` FROM message_search s JOIN messages m ON m.id = s.msg_id
		WHERE s.conv_id = ? AND s.seq > ? AND s.seq < ? ORDER BY s.seq `+order+` LIMIT ?`,
		conv, q.After, before, q.Limit)
}
