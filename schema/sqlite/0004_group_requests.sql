-- Pending requests to join groups whose join_policy is "approval": one per
-- user and group. A request ends when it is answered, when its user joins
-- the group, or when the group is dissolved.
CREATE TABLE IF NOT EXISTS group_requests (
    group_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
