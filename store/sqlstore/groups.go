package sqlstore

import (
	"context"

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
