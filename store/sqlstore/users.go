package sqlstore

import (
	"context"

	"github.com/mqim/mqim/store"
)

const userCols = `id, name, avatar, ext, password_hash, disabled, tokens_after, created_at, updated_at`

// insertUser inserts one user from named parameters; Dialect.UpsertUser
// may follow it.
const insertUser = `INSERT INTO users (` + userCols + `)
	VALUES (:id, :name, :avatar, :ext, :password_hash, :disabled, :tokens_after, :created_at, :updated_at)`

// UpsertUser creates u or updates its profile fields and reports whether
// it was created (store.Users); of concurrent creators of one id exactly one
// is told so. CreatedAt is kept on update, UpdatedAt set to now, and u is
// refreshed with the stored row.
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
	if _, err := s.db.NamedExecContext(ctx, insertUser, args); err != nil {
		if !s.d.IsConflict(err) {
			return false, s.wrap("upsert user", err)
		}
		created = false
		if _, err := s.db.NamedExecContext(ctx, insertUser+` `+s.d.UpsertUser, args); err != nil {
			return false, s.wrap("upsert user", err)
		}
	}
	if err := s.db.GetContext(ctx, u, `SELECT `+userCols+` FROM users WHERE id = ?`, u.ID); err != nil {
		return false, s.wrap("upsert user", err)
	}
	return created, nil
}

// User returns one user or ErrNotFound (store.Users). Ids are case-sensitive.
func (s *Store) User(ctx context.Context, id string) (*store.User, error) {
	var u store.User
	err := s.db.GetContext(ctx, &u, `SELECT `+userCols+` FROM users WHERE id = ?`, id)
	if err != nil {
		return nil, s.wrap("user "+id, err)
	}
	return &u, nil
}

// UsersByID returns the users that exist among ids, keyed by id
// (store.Users), in as many statements as the ids need.
func (s *Store) UsersByID(ctx context.Context, ids []string) (map[string]*store.User, error) {
	us, err := selectIn[*store.User](ctx, s, "users", `SELECT `+userCols+` FROM users WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.User, len(us))
	for _, u := range us {
		out[u.ID] = u
	}
	return out, nil
}
