package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mqim/mqim/store"
)

// Store is the sqlx implementation of store.Store.
type Store struct {
	db *sqlx.DB
	d  Dialect
}

var _ store.Store = (*Store)(nil)

// New wraps an open database.
func New(db *sqlx.DB, d Dialect) *Store {
	if d.MaxParams == 0 {
		d.MaxParams = 900
	}
	return &Store{db: db, d: d}
}

// Migrate applies pending migrations and reports how many ran.
func (s *Store) Migrate(ctx context.Context) (int, error) { return Migrate(ctx, s.db, s.d) }

// DB exposes the pool for tests and tools.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func now() int64 { return time.Now().UnixMilli() }

// wrap adds context and maps driver errors onto the store sentinels.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case s.d.IsConflict(err):
		return fmt.Errorf("%s: %w: %v", op, store.ErrConflict, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- users

const userCols = `id, name, avatar, ext, password_hash, disabled, tokens_after, created_at, updated_at`

// UpsertUser implements store.Users.
func (s *Store) UpsertUser(ctx context.Context, u *store.User) (bool, error) {
	t := now()
	if u.CreatedAt == 0 {
		u.CreatedAt = t
	}
	u.UpdatedAt = t
	args := map[string]any{
		"id": u.ID, "name": u.Name, "avatar": u.Avatar, "ext": u.Ext,
		"password_hash": u.PasswordHash, "disabled": u.Disabled, "tokens_after": u.TokensAfter,
		"created_at": u.CreatedAt, "updated_at": u.UpdatedAt,
	}
	// Insert first and update only when the id is taken: of concurrent
	// creators exactly one succeeds, the others get a unique-key violation
	// (counting rows beforehand let several of them report created).
	created := true
	if _, err := s.db.NamedExecContext(ctx, `INSERT INTO users (`+userCols+`)
		VALUES (:id, :name, :avatar, :ext, :password_hash, :disabled, :tokens_after, :created_at, :updated_at)`, args); err != nil {
		if !s.d.IsConflict(err) {
			return false, s.wrap("upsert user", err)
		}
		created = false
		if _, err := s.db.NamedExecContext(ctx, s.d.UpsertUser, args); err != nil {
			return false, s.wrap("upsert user", err)
		}
	}
	if err := s.db.GetContext(ctx, u, `SELECT `+userCols+` FROM users WHERE id = ?`, u.ID); err != nil {
		return false, s.wrap("upsert user", err)
	}
	return created, nil
}

// User implements store.Users.
func (s *Store) User(ctx context.Context, id string) (*store.User, error) {
	var u store.User
	err := s.db.GetContext(ctx, &u, `SELECT `+userCols+` FROM users WHERE id = ?`, id)
	if err != nil {
		return nil, s.wrap("user "+id, err)
	}
	return &u, nil
}

// UsersByID implements store.Users.
func (s *Store) UsersByID(ctx context.Context, ids []string) (map[string]*store.User, error) {
	out := make(map[string]*store.User, len(ids))
	for _, chunk := range chunks(ids, s.d.MaxParams) {
		q, args, err := sqlx.In(`SELECT `+userCols+` FROM users WHERE id IN (?)`, chunk)
		if err != nil {
			return nil, err
		}
		var us []*store.User
		if err := s.db.SelectContext(ctx, &us, q, args...); err != nil {
			return nil, s.wrap("users", err)
		}
		for _, u := range us {
			out[u.ID] = u
		}
	}
	return out, nil
}

func chunks[T any](xs []T, n int) [][]T {
	var out [][]T
	for len(xs) > n {
		out = append(out, xs[:n])
		xs = xs[n:]
	}
	if len(xs) > 0 {
		out = append(out, xs)
	}
	return out
}

// ---- groups

const groupCols = `id, name, avatar, notice, owner, join_policy, mute_all, ext, dissolved, created_at, updated_at`
const groupSel = `id, name, avatar, notice, owner, join_policy, mute_all, ext, dissolved, created_at, updated_at`
const memberCols = `group_id, user_id, role, muted_until, join_seq, joined_at`

// Group implements store.Groups.
func (s *Store) Group(ctx context.Context, id string) (*store.Group, error) {
	var g store.Group
	if err := s.db.GetContext(ctx, &g, `SELECT `+groupSel+` FROM chat_groups WHERE id = ?`, id); err != nil {
		return nil, s.wrap("group "+id, err)
	}
	return &g, nil
}

// Member implements store.Groups.
func (s *Store) Member(ctx context.Context, groupID, userID string) (*store.Member, error) {
	var m store.Member
	if err := s.db.GetContext(ctx, &m, `SELECT `+memberCols+` FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID); err != nil {
		return nil, s.wrap("member", err)
	}
	return &m, nil
}

// Members implements store.Groups.
func (s *Store) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	ms := []store.Member{}
	err := s.db.SelectContext(ctx, &ms, `SELECT `+memberCols+` FROM group_members WHERE group_id = ?
		ORDER BY CASE role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, joined_at, user_id`, groupID)
	return ms, s.wrap("members", err)
}

// UserGroups implements store.Groups.
func (s *Store) UserGroups(ctx context.Context, userID string) ([]string, error) {
	ids := []string{}
	err := s.db.SelectContext(ctx, &ids, `SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id`, userID)
	return ids, s.wrap("user groups", err)
}

// ---- messages

const msgCols = `id, conv_id, seq, sender, to_id, COALESCE(cid, '') AS cid, type, body, reply_to, mentions, ext, ts, edited_at, recalled`

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
	out := make([]*store.Message, len(rows))
	for i := range rows {
		out[i] = rows[i].msg()
	}
	return out, nil
}

// LastSeqs implements store.Messages.
func (s *Store) LastSeqs(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	for _, chunk := range chunks(ids, s.d.MaxParams) {
		q, args, err := sqlx.In(`SELECT id, last_seq FROM conversations WHERE id IN (?)`, chunk)
		if err != nil {
			return nil, err
		}
		var rows []struct {
			ID      string `db:"id"`
			LastSeq int64  `db:"last_seq"`
		}
		if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
			return nil, s.wrap("last seqs", err)
		}
		for _, r := range rows {
			out[r.ID] = r.LastSeq
		}
	}
	return out, nil
}

// MessagesByCID implements store.Messages.
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

// Commit implements store.Messages. One transaction: a multi-row insert of
// the messages, then one update per conversation touched and the membership
// changes, so a batch of N messages costs a handful of statements.
func (s *Store) Commit(ctx context.Context, batch []store.Write) error {
	if len(batch) == 0 {
		return nil
	}
	// READ COMMITTED: under MySQL's REPEATABLE READ, the update of a
	// conversation row that does not exist yet takes a gap lock, and two
	// batches opening different conversations deadlock on their inserts.
	// SQLite ignores the level (its writers are serialized anyway).
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return s.wrap("commit", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := s.commit(ctx, tx, batch); err != nil {
		return err
	}
	return s.wrap("commit", tx.Commit())
}

func (s *Store) commit(ctx context.Context, tx *sqlx.Tx, batch []store.Write) error {
	const per = 14
	for _, part := range chunks(batch, s.d.MaxParams/per) {
		var b strings.Builder
		b.WriteString(`INSERT INTO messages (id, conv_id, seq, sender, to_id, cid, type, body, reply_to, mentions, ext, ts, edited_at, recalled) VALUES `)
		args := make([]any, 0, per*len(part))
		for i, w := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
			m := w.Msg
			args = append(args, m.ID, m.Conv, m.Seq, m.From, m.To, nullString(m.CID), m.Type, string(m.Body),
				m.ReplyTo, strings.Join(m.Mentions, ","), m.Ext, m.TS, m.EditedAt, m.Recalled)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return s.wrap("insert messages", err)
		}
	}
	// Group creation and membership changes are rare: a statement each.
	for _, w := range batch {
		if err := s.applyGroupChanges(ctx, tx, w); err != nil {
			return err
		}
	}
	// Per conversation, the batch's last message (batches are in seq order).
	// The unique (conv_id, seq) of messages is the arbiter between writers;
	// the upsert only ever moves last_seq forward.
	last := map[string]store.Write{}
	var convIDs []string
	for _, w := range batch {
		if _, ok := last[w.Msg.Conv]; !ok {
			convIDs = append(convIDs, w.Msg.Conv)
		}
		last[w.Msg.Conv] = w
	}
	for _, part := range chunks(convIDs, s.d.MaxParams/5) {
		args := make([]any, 0, 5*len(part))
		for _, id := range part {
			w := last[id]
			args = append(args, id, convKind(w), w.Msg.Seq, w.Msg.ID, w.Msg.TS)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, kind, last_seq, last_msg_id, updated_at) VALUES `+
			placeholders(len(part), 5)+` `+s.d.UpsertConvs, args...); err != nil {
			return s.wrap("upsert conversations", err)
		}
		// A new message brings a hidden conversation back.
		q, inArgs, err := sqlx.In(`UPDATE conversation_members SET hidden = 0 WHERE conv_id IN (?) AND hidden = 1 AND active = 1`, part)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, inArgs...); err != nil {
			return s.wrap("unhide conversations", err)
		}
	}
	// Participants join (if not members yet) from their message on: in a
	// direct conversation it is unread, a group join event is not. Then the
	// senders' own read positions: a sender has read what it sent.
	type key struct{ user, conv string }
	var joins []any
	nJoins := 0
	for _, w := range batch {
		for _, uid := range w.Participants {
			read := w.Msg.Seq - 1
			if convKind(w) == store.KindGroup {
				read = w.Msg.Seq
			}
			joins = append(joins, uid, w.Msg.Conv, read, w.Msg.Seq-1)
			nJoins++
		}
	}
	for len(joins) > 0 {
		n := min(nJoins, s.d.MaxParams/4)
		if _, err := tx.ExecContext(ctx, s.d.InsertIgnore+` INTO conversation_members (user_id, conv_id, read_seq, min_seq) VALUES `+
			placeholders(n, 4), joins[:4*n]...); err != nil {
			return s.wrap("insert participants", err)
		}
		joins, nJoins = joins[4*n:], nJoins-n
	}
	reads := map[key]int64{}
	var order []key
	for _, w := range batch {
		from := w.Msg.From
		if from == "" || strings.HasPrefix(from, "$") {
			continue
		}
		if w.Msg.Type == "system" {
			// A system message may be attributed to someone who is not a
			// member (the service key names anyone): raise only an existing
			// member's position, never create one.
			if _, err := tx.ExecContext(ctx, `UPDATE conversation_members SET read_seq = `+s.d.Greatest+`(read_seq, ?) WHERE user_id = ? AND conv_id = ? AND active = 1`,
				w.Msg.Seq, from, w.Msg.Conv); err != nil {
				return s.wrap("system read position", err)
			}
			continue
		}
		k := key{from, w.Msg.Conv}
		if _, ok := reads[k]; !ok {
			order = append(order, k)
		}
		reads[k] = w.Msg.Seq
	}
	for _, part := range chunks(order, s.d.MaxParams/4) {
		args := make([]any, 0, 4*len(part))
		for _, k := range part {
			args = append(args, k.user, k.conv, reads[k], reads[k]-1)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversation_members (user_id, conv_id, read_seq, min_seq) VALUES `+
			placeholders(len(part), 4)+` `+s.d.UpsertReads, args...); err != nil {
			return s.wrap("upsert read positions", err)
		}
	}
	return nil
}

func convKind(w store.Write) string {
	if w.Kind != "" {
		return w.Kind
	}
	if strings.HasPrefix(w.Msg.Conv, "g:") {
		return store.KindGroup
	}
	return store.KindDirect
}

// placeholders returns "(?,?),(?,?)" for rows of n columns.
func placeholders(rows, n int) string {
	one := "(" + strings.Repeat("?,", n-1) + "?)"
	return strings.Repeat(one+",", rows-1) + one
}

// applyGroupChanges writes a Write's group creation and membership changes.
func (s *Store) applyGroupChanges(ctx context.Context, tx *sqlx.Tx, w store.Write) error {
	m := w.Msg
	gid := strings.TrimPrefix(m.Conv, "g:")
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

// Messages implements store.Messages.
func (s *Store) Messages(ctx context.Context, conv string, q store.MsgQuery) ([]*store.Message, error) {
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	return s.selectMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE conv_id = ? AND seq > ? AND seq < ? ORDER BY seq `+order+` LIMIT ?`,
		conv, q.After, before, q.Limit)
}

// Message implements store.Messages.
func (s *Store) Message(ctx context.Context, id string) (*store.Message, error) {
	ms, err := s.selectMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	return ms[0], nil
}

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

// convUpdated is when a conversation last changed for its member: for a
// former member, when they left.
const convUpdated = `(CASE WHEN cm.active = 1 THEN c.updated_at ELSE cm.left_at END)`

const convSelect = `SELECT c.id, c.kind, c.last_seq, c.last_msg_id, ` + convUpdated + ` AS updated_at, cm.read_seq, cm.min_seq, cm.pinned, cm.muted, cm.hidden, cm.active
	FROM conversation_members cm JOIN conversations c ON c.id = cm.conv_id `

// Conversations implements store.Messages.
func (s *Store) Conversations(ctx context.Context, userID string, q store.ConvQuery) ([]store.Conversation, error) {
	where := `WHERE cm.user_id = ? AND ` + convUpdated + ` > ?`
	args := []any{userID, q.UpdatedAfter}
	if q.BeforeTS > 0 {
		where += ` AND (` + convUpdated + ` < ? OR (` + convUpdated + ` = ? AND c.id > ?))`
		args = append(args, q.BeforeTS, q.BeforeTS, q.BeforeID)
	}
	args = append(args, q.Limit)
	var rows []convRow
	if err := s.db.SelectContext(ctx, &rows, convSelect+where+` ORDER BY `+convUpdated+` DESC, c.id LIMIT ?`, args...); err != nil {
		return nil, s.wrap("conversations", err)
	}
	return s.convs(ctx, rows)
}

// Conversation implements store.Messages.
func (s *Store) Conversation(ctx context.Context, userID, conv string) (*store.Conversation, error) {
	var rows []convRow
	if err := s.db.SelectContext(ctx, &rows, convSelect+`WHERE cm.user_id = ? AND cm.conv_id = ?`, userID, conv); err != nil {
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

func (s *Store) convs(ctx context.Context, rows []convRow) ([]store.Conversation, error) {
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.LastMsgID != "" {
			ids = append(ids, r.LastMsgID)
		}
	}
	last := map[string]*store.Message{}
	for _, chunk := range chunks(ids, s.d.MaxParams) {
		q, args, err := sqlx.In(`SELECT `+msgCols+` FROM messages WHERE id IN (?)`, chunk)
		if err != nil {
			return nil, err
		}
		ms, err := s.selectMessages(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			last[m.ID] = m
		}
	}
	out := make([]store.Conversation, len(rows))
	for i, r := range rows {
		out[i] = store.Conversation{ID: r.ID, Kind: r.Kind, LastSeq: r.LastSeq, ReadSeq: r.ReadSeq, MinSeq: r.MinSeq,
			Pinned: r.Pinned, Muted: r.Muted, Hidden: r.Hidden, Active: r.Active, UpdatedAt: r.UpdatedAt, LastMessage: last[r.LastMsgID]}
		if !r.Active {
			// A former member's view stops where they left, LastMessage too.
			out[i].LastSeq = r.ReadSeq
			if m := out[i].LastMessage; m != nil && m.Seq > r.ReadSeq {
				ms, err := s.selectMessages(ctx, `SELECT `+msgCols+` FROM messages WHERE conv_id = ? AND seq = ?`, r.ID, r.ReadSeq)
				if err != nil {
					return nil, err
				}
				out[i].LastMessage = nil
				if len(ms) > 0 {
					out[i].LastMessage = ms[0]
				}
			}
		}
	}
	return out, nil
}

// MarkRead implements store.Messages.
func (s *Store) MarkRead(ctx context.Context, userID, conv string, seq int64) (int64, error) {
	// READ COMMITTED: under MySQL's REPEATABLE READ the final SELECT read the
	// snapshot taken before the UPDATE, so when a concurrent MarkRead had
	// already raised read_seq it returned the old, lower value.
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, s.wrap("mark read", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var lastSeq int64
	if err := tx.GetContext(ctx, &lastSeq, `SELECT last_seq FROM conversations WHERE id = ?`, conv); err != nil {
		return 0, s.wrap("mark read", err)
	}
	if seq > lastSeq {
		seq = lastSeq
	}
	// A former member (active = 0) has read up to the leave event, and that stays.
	res, err := tx.ExecContext(ctx, `UPDATE conversation_members SET read_seq = `+s.d.Greatest+`(read_seq, ?) WHERE user_id = ? AND conv_id = ? AND active = 1`, seq, userID, conv)
	if err != nil {
		return 0, s.wrap("mark read", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// MySQL reports 0 when nothing changed: tell "no row" apart.
		var c int
		if err := tx.GetContext(ctx, &c, `SELECT COUNT(*) FROM conversation_members WHERE user_id = ? AND conv_id = ?`, userID, conv); err != nil {
			return 0, s.wrap("mark read", err)
		}
		if c == 0 {
			return 0, fmt.Errorf("mark read %s: %w", conv, store.ErrNotFound)
		}
	}
	var read int64
	if err := tx.GetContext(ctx, &read, `SELECT read_seq FROM conversation_members WHERE user_id = ? AND conv_id = ?`, userID, conv); err != nil {
		return 0, s.wrap("mark read", err)
	}
	return read, s.wrap("mark read", tx.Commit())
}

// SetConvPrefs implements store.Messages.
func (s *Store) SetConvPrefs(ctx context.Context, userID, conv string, p store.ConvPrefs) error {
	var sets []string
	var args []any
	for col, v := range map[string]*bool{"pinned": p.Pinned, "muted": p.Muted, "hidden": p.Hidden} {
		if v != nil {
			sets = append(sets, col+" = ?")
			args = append(args, *v)
		}
	}
	if _, err := s.Conversation(ctx, userID, conv); err != nil {
		return err
	}
	if len(sets) == 0 {
		return nil
	}
	args = append(args, userID, conv)
	_, err := s.db.ExecContext(ctx, `UPDATE conversation_members SET `+strings.Join(sets, ", ")+` WHERE user_id = ? AND conv_id = ?`, args...)
	return s.wrap("conversation prefs", err)
}

// ---- devices

const deviceCols = `user_id, device_id, platform, token, topic, updated_at`

// PutDevice implements store.Devices.
func (s *Store) PutDevice(ctx context.Context, d *store.Device) error {
	d.UpdatedAt = now()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("put device", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// A token belongs to one device: a phone that changed hands is re-bound.
	if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE platform = ? AND token = ? AND NOT (user_id = ? AND device_id = ?)`,
		d.Platform, d.Token, d.UserID, d.DeviceID); err != nil {
		return s.wrap("put device", err)
	}
	if _, err := tx.NamedExecContext(ctx, s.d.UpsertDevice, d); err != nil {
		return s.wrap("put device", err)
	}
	return s.wrap("put device", tx.Commit())
}

// DeleteDevice implements store.Devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID)
	if err != nil {
		return s.wrap("delete device", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %s: %w", deviceID, store.ErrNotFound)
	}
	return nil
}

// Devices implements store.Devices.
func (s *Store) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	ds := []store.Device{}
	err := s.db.SelectContext(ctx, &ds, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY device_id`, userID)
	return ds, s.wrap("devices", err)
}

// DevicesOf implements store.Devices.
func (s *Store) DevicesOf(ctx context.Context, userIDs []string) ([]store.Device, error) {
	out := []store.Device{}
	for _, chunk := range chunks(userIDs, s.d.MaxParams) {
		q, args, err := sqlx.In(`SELECT `+deviceCols+` FROM devices WHERE user_id IN (?)`, chunk)
		if err != nil {
			return nil, err
		}
		var ds []store.Device
		if err := s.db.SelectContext(ctx, &ds, q, args...); err != nil {
			return nil, s.wrap("devices", err)
		}
		out = append(out, ds...)
	}
	return out, nil
}

// DeleteToken implements store.Devices.
func (s *Store) DeleteToken(ctx context.Context, platform, token string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE platform = ? AND token = ?`, platform, token)
	return s.wrap("delete token", err)
}

// PushStates implements store.Messages: two queries for any number of users.
func (s *Store) PushStates(ctx context.Context, conv string, userIDs []string) (map[string]store.PushState, error) {
	out := make(map[string]store.PushState, len(userIDs))
	for _, chunk := range chunks(userIDs, s.d.MaxParams-1) {
		q, args, err := sqlx.In(`SELECT cm.user_id, SUM(c.last_seq - cm.read_seq) AS unread
			FROM conversation_members cm JOIN conversations c ON c.id = cm.conv_id
			WHERE cm.user_id IN (?) AND cm.muted = 0 AND cm.active = 1 AND c.last_seq > cm.read_seq
			GROUP BY cm.user_id`, chunk)
		if err != nil {
			return nil, err
		}
		var rows []struct {
			UserID string `db:"user_id"`
			Unread int64  `db:"unread"`
		}
		if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
			return nil, s.wrap("unread totals", err)
		}
		for _, r := range rows {
			out[r.UserID] = store.PushState{Unread: r.Unread}
		}
		q, args, err = sqlx.In(`SELECT user_id FROM conversation_members WHERE conv_id = ? AND muted = 1 AND user_id IN (?)`, conv, chunk)
		if err != nil {
			return nil, err
		}
		var muted []string
		if err := s.db.SelectContext(ctx, &muted, q, args...); err != nil {
			return nil, s.wrap("muted members", err)
		}
		for _, uid := range muted {
			st := out[uid]
			st.Muted = true
			out[uid] = st
		}
	}
	return out, nil
}
