-- Users. password_hash is a bcrypt hash or empty (no password login).
-- tokens_after (Unix ms) revokes every token issued before it.
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    avatar        TEXT NOT NULL DEFAULT '',
    ext           TEXT,
    password_hash TEXT NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    tokens_after  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Groups ("groups" is reserved in MySQL 8, hence chat_groups in both dialects).
CREATE TABLE IF NOT EXISTS chat_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    avatar      TEXT NOT NULL DEFAULT '',
    notice      TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL,
    join_policy TEXT NOT NULL DEFAULT 'invite',
    mute_all    INTEGER NOT NULL DEFAULT 0,
    ext         TEXT,
    dissolved   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Members: join_seq is the group conversation's seq at the member's join; a
-- member sees history after it.
CREATE TABLE IF NOT EXISTS group_members (
    group_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL DEFAULT 'member',
    muted_until INTEGER NOT NULL DEFAULT 0,
    join_seq    INTEGER NOT NULL DEFAULT 0,
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS group_members_user ON group_members (user_id);

-- Conversations: d:{a}:{b} or g:{gid}. last_seq is the highest stored seq.
CREATE TABLE IF NOT EXISTS conversations (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    last_msg_id TEXT NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL
);

-- Per-user conversation state.
CREATE TABLE IF NOT EXISTS conversation_members (
    user_id    TEXT NOT NULL,
    conv_id    TEXT NOT NULL,
    read_seq   INTEGER NOT NULL DEFAULT 0,
    min_seq    INTEGER NOT NULL DEFAULT 0,
    pinned     INTEGER NOT NULL DEFAULT 0,
    muted      INTEGER NOT NULL DEFAULT 0,
    hidden     INTEGER NOT NULL DEFAULT 0,
    active     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, conv_id)
);
CREATE INDEX IF NOT EXISTS conversation_members_conv ON conversation_members (conv_id);

-- Messages. (conv_id, seq) is the final arbiter of order; (sender, cid)
-- makes client resends idempotent (NULL cid: no dedupe).
CREATE TABLE IF NOT EXISTS messages (
    id         TEXT PRIMARY KEY,
    conv_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    to_id      TEXT NOT NULL,
    cid        TEXT,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL,
    reply_to   TEXT NOT NULL DEFAULT '',
    mentions   TEXT NOT NULL DEFAULT '',
    ext        TEXT,
    ts         INTEGER NOT NULL,
    edited_at  INTEGER NOT NULL DEFAULT 0,
    recalled   INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_conv_seq ON messages (conv_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_cid ON messages (sender, cid);

-- Push devices: the device id is the part after "/" in the MQTT client id.
CREATE TABLE IF NOT EXISTS devices (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    platform   TEXT NOT NULL,
    token      TEXT NOT NULL,
    topic      TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_token ON devices (platform, token);
