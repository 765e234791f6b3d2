package sqlstore

import (
	"context"
	"fmt"

	"github.com/mqim/mqim/store"
)

// Friendships are stored as two rows, one per direction, always written and
// deleted together in one transaction: a user's friends (and their count)
// are then one range of the primary key.

const friendRequestCols = `from_user, to_user, message, created_at`

// PutFriendRequest stores r unless a request from r.From to r.To is pending
// (store.Social).
func (s *Store) PutFriendRequest(ctx context.Context, r *store.FriendRequest) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.d.InsertIgnore+` INTO friend_requests (`+friendRequestCols+`) VALUES (?, ?, ?, ?)`,
		r.From, r.To, r.Message, r.CreatedAt)
	if err != nil {
		return false, s.wrap("put friend request", err)
	}
	n, err := res.RowsAffected()
	return n > 0, s.wrap("put friend request", err)
}

// FriendRequest returns one pending request or ErrNotFound (store.Social).
func (s *Store) FriendRequest(ctx context.Context, from, to string) (*store.FriendRequest, error) {
	var r store.FriendRequest
	err := s.db.GetContext(ctx, &r, `SELECT `+friendRequestCols+` FROM friend_requests WHERE from_user = ? AND to_user = ?`, from, to)
	if err != nil {
		return nil, s.wrap("friend request", err)
	}
	return &r, nil
}

// DeleteFriendRequest removes one request or returns ErrNotFound
// (store.Social).
func (s *Store) DeleteFriendRequest(ctx context.Context, from, to string) error {
	return s.deleteOne(ctx, "friend request", `DELETE FROM friend_requests WHERE from_user = ? AND to_user = ?`, from, to)
}

// FriendRequests lists the requests pending to and from userID, newest
// first (store.Social).
func (s *Store) FriendRequests(ctx context.Context, userID string) (incoming, outgoing []store.FriendRequest, err error) {
	incoming, outgoing = []store.FriendRequest{}, []store.FriendRequest{}
	if err := s.db.SelectContext(ctx, &incoming, `SELECT `+friendRequestCols+` FROM friend_requests WHERE to_user = ?
		ORDER BY created_at DESC, from_user`, userID); err != nil {
		return nil, nil, s.wrap("friend requests", err)
	}
	if err := s.db.SelectContext(ctx, &outgoing, `SELECT `+friendRequestCols+` FROM friend_requests WHERE from_user = ?
		ORDER BY created_at DESC, to_user`, userID); err != nil {
		return nil, nil, s.wrap("friend requests", err)
	}
	return incoming, outgoing, nil
}

// dropRequests is the statement removing the requests between two users,
// both directions.
const dropRequests = `DELETE FROM friend_requests WHERE (from_user = ? AND to_user = ?) OR (from_user = ? AND to_user = ?)`

// AddFriends makes a and b friends and removes the requests between them,
// in one transaction; ErrConflict when they are friends already
// (store.Social).
func (s *Store) AddFriends(ctx context.Context, a, b string, since int64) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.wrap("add friends", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `INSERT INTO friends (user_id, friend_id, since) VALUES (?, ?, ?), (?, ?, ?)`,
		a, b, since, b, a, since); err != nil {
		return s.wrap("add friends", err)
	}
	if _, err := tx.ExecContext(ctx, dropRequests, a, b, b, a); err != nil {
		return s.wrap("add friends", err)
	}
	return s.wrap("add friends", tx.Commit())
}

// RemoveFriends deletes both rows of a friendship, or returns ErrNotFound
// (store.Social).
func (s *Store) RemoveFriends(ctx context.Context, a, b string) error {
	return s.deleteOne(ctx, "remove friends", `DELETE FROM friends WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)`, a, b, b, a)
}

// Friends lists a user's friends by user id (store.Social).
func (s *Store) Friends(ctx context.Context, userID string) ([]store.Friend, error) {
	fs := []store.Friend{}
	err := s.db.SelectContext(ctx, &fs, `SELECT friend_id, since FROM friends WHERE user_id = ? ORDER BY friend_id`, userID)
	return fs, s.wrap("friends", err)
}

// PutBlock records a block and removes the requests between the two users,
// in one transaction; an existing block is kept (store.Social).
func (s *Store) PutBlock(ctx context.Context, blocker, blocked string, at int64) (bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, s.wrap("put block", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	res, err := tx.ExecContext(ctx, s.d.InsertIgnore+` INTO blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)`, blocker, blocked, at)
	if err != nil {
		return false, s.wrap("put block", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.wrap("put block", err)
	}
	if _, err := tx.ExecContext(ctx, dropRequests, blocker, blocked, blocked, blocker); err != nil {
		return false, s.wrap("put block", err)
	}
	return n > 0, s.wrap("put block", tx.Commit())
}

// DeleteBlock removes a block or returns ErrNotFound (store.Social).
func (s *Store) DeleteBlock(ctx context.Context, blocker, blocked string) error {
	return s.deleteOne(ctx, "delete block", `DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?`, blocker, blocked)
}

// Blocks lists the users a user blocked, by user id (store.Social).
func (s *Store) Blocks(ctx context.Context, userID string) ([]store.Block, error) {
	bs := []store.Block{}
	err := s.db.SelectContext(ctx, &bs, `SELECT blocked_id, created_at FROM blocks WHERE user_id = ? ORDER BY blocked_id`, userID)
	return bs, s.wrap("blocks", err)
}

// SocialCounts counts a user's pending outgoing requests, friends and
// blocks in one query (store.Social).
func (s *Store) SocialCounts(ctx context.Context, userID string) (store.SocialCounts, error) {
	var c struct {
		Outgoing int `db:"outgoing"`
		Friends  int `db:"friends"`
		Blocks   int `db:"blocks"`
	}
	err := s.db.GetContext(ctx, &c, `SELECT
		(SELECT COUNT(*) FROM friend_requests WHERE from_user = ?) AS outgoing,
		(SELECT COUNT(*) FROM friends WHERE user_id = ?) AS friends,
		(SELECT COUNT(*) FROM blocks WHERE user_id = ?) AS blocks`, userID, userID, userID)
	if err != nil {
		return store.SocialCounts{}, s.wrap("social counts", err)
	}
	return store.SocialCounts{Outgoing: c.Outgoing, Friends: c.Friends, Blocks: c.Blocks}, nil
}

// deleteOne runs a DELETE and returns ErrNotFound when it removed nothing.
func (s *Store) deleteOne(ctx context.Context, op, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return s.wrap(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap(op, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}
