-- Friends and blocks (docs/http-api.md, "Friends, blocks and the 1:1 policy").

-- Pending friend requests: from_user asked to_user. At most one per
-- direction; accepting, rejecting or a block removes it.
CREATE TABLE IF NOT EXISTS friend_requests (
    from_user  TEXT NOT NULL,
    to_user    TEXT NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (from_user, to_user)
);
CREATE INDEX IF NOT EXISTS friend_requests_to ON friend_requests (to_user);

-- Friendships, stored in both directions (two rows, written and removed in
-- one transaction), so that a user's friends are one indexed range.
CREATE TABLE IF NOT EXISTS friends (
    user_id   TEXT NOT NULL,
    friend_id TEXT NOT NULL,
    since     INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

-- Blocks: user_id blocked blocked_id (one direction only).
CREATE TABLE IF NOT EXISTS blocks (
    user_id    TEXT NOT NULL,
    blocked_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
