package sqlstore

import (
	"context"
	"fmt"

	"github.com/mqim/mqim/store"
)

const groupCols = `id, name, avatar, notice, owner, join_policy, mute_all, ext, dissolved, created_at, updated_at`
const memberCols = `group_id, user_id, role, muted_until, join_seq, joined_at`

// Group returns one group, dissolved ones too, or ErrNotFound (store.Groups).
func (s *Store) Group(ctx context.Context, id string) (*store.Group, error) {
	var g store.Group
	if err := s.db.GetContext(ctx, &g, `SELECT `+groupCols+` FROM chat_groups WHERE id = ?`, id); err != nil {
		return nil, s.wrap("group "+id, err)
	}
	return &g, nil
}

// Members lists a group's members, none for an unknown group: the owner,
// then admins, then the rest, each by join time (store.Groups).
func (s *Store) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	ms := []store.Member{}
	err := s.db.SelectContext(ctx, &ms, `SELECT `+memberCols+` FROM group_members WHERE group_id = ?
		ORDER BY CASE role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, joined_at, user_id`, groupID)
	return ms, s.wrap("members", err)
}

// UserGroups lists the ids of the groups a user belongs to, by id
// (store.Groups).
func (s *Store) UserGroups(ctx context.Context, userID string) ([]string, error) {
	ids := []string{}
	err := s.db.SelectContext(ctx, &ids, `SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id`, userID)
	return ids, s.wrap("user groups", err)
}

// GroupCounts returns how many groups each of userIDs belongs to; users in
// none are absent (store.Groups).
func (s *Store) GroupCounts(ctx context.Context, userIDs []string) (map[string]int, error) {
	type row struct {
		UserID string `db:"user_id"`
		N      int    `db:"n"`
	}
	rows, err := selectIn[row](ctx, s, "group counts", `SELECT user_id, COUNT(*) AS n FROM group_members WHERE user_id IN (?) GROUP BY user_id`, userIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.UserID] = r.N
	}
	return out, nil
}

const joinRequestCols = `group_id, user_id, message, created_at`

// PutJoinRequest stores r unless the user already has a request to the
// group (then created is false and the stored one stays); a new request to
// a group holding max of them (max > 0) is ErrLimit (store.GroupRequests).
func (s *Store) PutJoinRequest(ctx context.Context, r *store.JoinRequest, max int) (bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, s.wrap("join request", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM group_requests WHERE group_id = ? AND user_id = ?`, r.GroupID, r.UserID); err != nil {
		return false, s.wrap("join request", err)
	}
	if n > 0 {
		return false, nil
	}
	if max > 0 {
		if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM group_requests WHERE group_id = ?`, r.GroupID); err != nil {
			return false, s.wrap("join request", err)
		}
		if n >= max {
			return false, fmt.Errorf("join request: %d pending: %w", n, store.ErrLimit)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_requests (`+joinRequestCols+`) VALUES (?,?,?,?)`,
		r.GroupID, r.UserID, r.Message, r.CreatedAt); err != nil {
		if s.d.IsConflict(err) {
			return false, nil // the same request, stored meanwhile
		}
		return false, s.wrap("join request", err)
	}
	return true, s.wrap("join request", tx.Commit())
}

// JoinRequest returns one request or ErrNotFound (store.GroupRequests).
func (s *Store) JoinRequest(ctx context.Context, groupID, userID string) (*store.JoinRequest, error) {
	var r store.JoinRequest
	if err := s.db.GetContext(ctx, &r, `SELECT `+joinRequestCols+` FROM group_requests WHERE group_id = ? AND user_id = ?`, groupID, userID); err != nil {
		return nil, s.wrap("join request", err)
	}
	return &r, nil
}

// JoinRequests lists a group's requests, oldest first, ties by user id
// (store.GroupRequests).
func (s *Store) JoinRequests(ctx context.Context, groupID string) ([]store.JoinRequest, error) {
	rs := []store.JoinRequest{}
	err := s.db.SelectContext(ctx, &rs, `SELECT `+joinRequestCols+` FROM group_requests WHERE group_id = ? ORDER BY created_at, user_id`, groupID)
	return rs, s.wrap("join requests", err)
}

// DeleteJoinRequest removes one request or returns ErrNotFound
// (store.GroupRequests).
func (s *Store) DeleteJoinRequest(ctx context.Context, groupID, userID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM group_requests WHERE group_id = ? AND user_id = ?`, groupID, userID)
	if err != nil {
		return s.wrap("delete join request", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap("delete join request", err)
	} else if n == 0 {
		return fmt.Errorf("delete join request: %w", store.ErrNotFound)
	}
	return nil
}
